//! The `text` backend's conformance suite: the shared checks, driven through its capabilities.

ndstore_conformance::suite!(ndstore_text::TextBackend);
