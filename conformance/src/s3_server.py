"""A local S3 server for ndstore's tests: moto's ThreadedMotoServer on 127.0.0.1 at a free
port, with one bucket created; prints the port, then serves until its standard input closes."""
import sys

import boto3
from moto.server import ThreadedMotoServer

bucket = sys.argv[1] if len(sys.argv) > 1 else "ndstore"
server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
server.start()
host, port = server.get_host_and_port()
boto3.client(
    "s3",
    endpoint_url=f"http://127.0.0.1:{port}",
    aws_access_key_id="testing",
    aws_secret_access_key="testing",
    region_name="us-east-1",
).create_bucket(Bucket=bucket)
print(port, flush=True)
sys.stdin.read()
server.stop()
