//! The README's first example, kept compiling: save, load, and a streaming writer with sync
//! and commit. Run it with `cargo run -p ndstore --example quickstart`.

use ndarray::{Array2, array};
use ndstore::file::{NpyWriter, npy};
use ndstore::{Commit, DType, DTypeKind, Durable, SaveOptions};

fn main() -> ndstore::Result<()> {
    let dir = std::env::temp_dir().join(format!("ndstore-quickstart-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| ndstore::Error::io("creating a directory", e))?;
    // README-BEGIN
    // Save: temporary file, fsync, rename over the target, fsync of the directory.
    // When save returns Ok, the array is on disk; a crash at any moment leaves the old file.
    let a = array![[1.0f64, 2.0, 3.0], [4.0, 5.0, 6.0]];
    npy::save(dir.join("a.npy"), &a)?;

    // Load: element type and dimensionality are checked before any data is read.
    let b: Array2<f64> = npy::load(dir.join("a.npy"))?;
    assert_eq!(a, b);

    // Stream rows: sync makes what was written durable, commit publishes the finished file
    // atomically. Dropped without commit, the writer rolls back and the target is untouched.
    let dtype = DType::native(DTypeKind::F64);
    let mut writer = NpyWriter::create(dir.join("rows.npy"), dtype, &[3], &SaveOptions::default())?;
    writer.append(&a)?;
    writer.sync()?;
    writer.append(&b)?;
    writer.commit()?;
    // README-END
    let rows: Array2<f64> = npy::load(dir.join("rows.npy"))?;
    println!("saved and loaded {:?}, streamed {:?}", a.dim(), rows.dim());
    std::fs::remove_dir_all(&dir).map_err(|e| ndstore::Error::io("cleaning up", e))?;
    Ok(())
}
