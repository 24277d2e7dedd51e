//! The feed types whose files say nothing the server reads (docker, helm,
//! maven, rpm, debian, …): the caller names the package in the query string
//! (`?name=&version=[&group=][&qualifier=]`).

use std::fs::File;
use std::io::BufReader;

use super::Found;

/// Nothing to read: the query string names the package.
pub fn identity(_file: BufReader<File>, _name: Option<&str>) -> Result<Option<Found>, String> {
    Ok(None)
}
