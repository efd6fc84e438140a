//! Bitbucket client.
