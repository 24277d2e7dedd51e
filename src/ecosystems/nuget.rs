//! NuGet packages (also Chocolatey and PowerShell feeds, whose packages are
//! NuGet packages): the identity a `.nupkg`'s `.nuspec` gives, read as NuGet's
//! own XML reader reads it.

use std::io::{Read, Seek};

use quick_xml::events::{BytesRef, Event};

use super::archive::bounded_text;
use super::zip::ZipArchive;
use super::Found;

pub(super) fn identity(file: impl Read + Seek) -> Result<Found, String> {
    let mut archive = ZipArchive::open(file, "a .nupkg (a zip archive)")?;
    let mut nuspecs = archive
        .entries()
        .iter()
        .enumerate()
        .filter(|(_, entry)| {
            !entry.name.contains('/') && entry.name.to_ascii_lowercase().ends_with(".nuspec")
        })
        .map(|(index, _)| index);
    let nuspec = nuspecs
        .next()
        .ok_or("is not a NuGet package: it has no .nuspec at its root")?;
    if nuspecs.next().is_some() {
        return Err(
            "is refused: it holds more than one .nuspec at its root, and tools disagree on which one counts"
                .to_owned(),
        );
    }
    let text = bounded_text(archive.open_entry(nuspec, ".nuspec")?, ".nuspec")?;
    let id = xml_text(&text, &["package", "metadata", "id"])?
        .ok_or("is not a NuGet package: its .nuspec has no <id>")?;
    let version = xml_text(&text, &["package", "metadata", "version"])?
        .ok_or("is not a NuGet package: its .nuspec has no <version>")?;
    Ok(Found {
        group: None,
        name: id,
        version,
        qualifier: String::new(),
    })
}

/// NuGet compares ids and versions without regard to case
/// (`Newtonsoft.Json` is `newtonsoft.json`): the stored key is lower case.
pub(super) fn key(text: &str) -> String {
    text.to_lowercase()
}

/// The text of the element at `path` (local names, namespaces ignored), read
/// as NuGet's XML parser reads it: all its text and CDATA, references
/// resolved, comments and processing instructions contributing nothing, then
/// trimmed. Anything NuGet would refuse or read otherwise is refused: a
/// DOCTYPE, an undefined entity, an element inside, the element twice.
pub(super) fn xml_text(text: &str, path: &[&str]) -> Result<Option<String>, String> {
    let invalid = |why: String| format!("has a .nuspec that is not valid XML ({why})");
    let element = path.last().copied().unwrap_or_default();
    let mut reader = quick_xml::Reader::from_str(text);
    let mut open: Vec<Vec<u8>> = Vec::new();
    // The element's text so far, while inside it.
    let mut inside: Option<String> = None;
    let mut found: Option<String> = None;
    loop {
        match reader.read_event().map_err(|e| invalid(e.to_string()))? {
            // NuGet's reader prohibits DTD processing, and a DTD could define
            // entities that this reader would not expand as NuGet's would.
            Event::DocType(_) => {
                return Err(
                    "has a .nuspec with a DOCTYPE declaration, which NuGet refuses to read"
                        .to_owned(),
                )
            }
            Event::Start(_) | Event::Empty(_) if inside.is_some() => {
                return Err(format!(
                    "has a .nuspec whose <{element}> holds an element, which NuGet does not accept"
                ))
            }
            Event::Start(start) => {
                open.push(start.local_name().as_ref().to_vec());
                if at_path(&open, path) {
                    if found.is_some() {
                        return Err(format!("has a .nuspec with two <{element}> elements"));
                    }
                    inside = Some(String::new());
                }
            }
            Event::Empty(start) => {
                open.push(start.local_name().as_ref().to_vec());
                if at_path(&open, path) {
                    if found.is_some() {
                        return Err(format!("has a .nuspec with two <{element}> elements"));
                    }
                    found = Some(String::new());
                }
                open.pop();
            }
            Event::End(_) => {
                // Inside, the only end possible is the element's own: a child
                // was refused, and the parser checks that end names match.
                if let Some(value) = inside.take() {
                    found = Some(value.trim().to_owned());
                }
                open.pop();
            }
            Event::Text(content) => {
                if let Some(value) = &mut inside {
                    value.push_str(
                        &content
                            .xml10_content()
                            .map_err(|e| invalid(e.to_string()))?,
                    );
                }
            }
            Event::CData(content) => {
                if let Some(value) = &mut inside {
                    value.push_str(
                        &content
                            .xml10_content()
                            .map_err(|e| invalid(e.to_string()))?,
                    );
                }
            }
            // Resolved wherever it is: an undefined entity anywhere makes the
            // whole document one NuGet refuses.
            Event::GeneralRef(reference) => {
                let resolved = resolve(&reference).map_err(invalid)?;
                if let Some(value) = &mut inside {
                    value.push_str(&resolved);
                }
            }
            Event::Eof => {
                if inside.is_some() {
                    return Err(invalid(format!("its <{element}> is not closed")));
                }
                return Ok(found);
            }
            _ => {}
        }
    }
}

/// Whether the open elements are `path`.
fn at_path(open: &[Vec<u8>], path: &[&str]) -> bool {
    open.len() == path.len()
        && open
            .iter()
            .zip(path)
            .all(|(name, wanted)| name.as_slice() == wanted.as_bytes())
}

/// What a reference stands for: a character, or one of the five entities XML
/// defines; any other entity would need a DTD, which a .nuspec may not have.
fn resolve(reference: &BytesRef<'_>) -> Result<String, String> {
    if let Some(c) = reference.resolve_char_ref().map_err(|e| e.to_string())? {
        return Ok(c.to_string());
    }
    let name = reference.decode().map_err(|e| e.to_string())?;
    quick_xml::escape::resolve_xml_entity(&name)
        .map(str::to_owned)
        .ok_or_else(|| format!("the entity &{name}; is not defined"))
}
