//! Trust: what proves who made the content a package carries. `image` checks image
//! signatures against the keys given with `--image-key`.

pub mod image;
