//! The `hdf5` backend's conformance suite: the shared checks, driven through its capabilities.

ndstore_conformance::suite!(ndstore_hdf5::Hdf5Backend);
