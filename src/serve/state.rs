//! What every request reads: the package's contents, the verified set and the readers.

use super::contents::Contents;
use super::stream::Readers;
use super::verified::Verified;

pub struct State {
    pub contents: Contents,
    pub verified: Verified,
    pub readers: Readers,
}
