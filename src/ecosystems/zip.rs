//! A small zip reader: the names in the central directory, and one entry's
//! data. Memory is bounded by numbers this reader checks, never by numbers the
//! archive gives: the `zip` crate walks every central header an archive really
//! holds whatever its end record declares, so an end record claiming a small
//! directory in front of thousands of 128 KiB headers cost 196 MB per upload.
//! Errors complete the sentence "The file …".

use std::io::{self, Read, Seek, SeekFrom, Take};

use flate2::read::DeflateDecoder;

use super::archive::MAX_ENTRIES;

/// The largest central directory read (it is held in memory while walked).
const MAX_CENTRAL_DIRECTORY: u64 = 16 * 1024 * 1024;

const END_SIGNATURE: [u8; 4] = *b"PK\x05\x06";
const CENTRAL_SIGNATURE: [u8; 4] = *b"PK\x01\x02";
const LOCAL_SIGNATURE: [u8; 4] = *b"PK\x03\x04";
/// The fixed parts of the end record, a central header and a local header.
const END_RECORD: usize = 22;
const CENTRAL_HEADER: usize = 46;
const LOCAL_HEADER: usize = 30;
/// The longest archive comment, which follows the end record: how far from
/// the end of the file the record can be.
const MAX_COMMENT: usize = 65_535;
/// General-purpose flag bit 0.
const ENCRYPTED: u16 = 1;
const STORED: u16 = 0;
const DEFLATED: u16 = 8;
/// The ZIP64 end-of-directory locator, 20 bytes just before the end record.
const ZIP64_LOCATOR: usize = 20;
const ZIP64_LOCATOR_SIGNATURE: [u8; 4] = [0x50, 0x4b, 0x06, 0x07];

/// One central directory entry.
#[derive(Debug)]
pub struct Entry {
    /// As UTF-8 when it is; otherwise each byte outside ASCII is `?`, which
    /// keeps the name's size (a lossy decoding would triple it) and cannot
    /// make it one of the names looked for, which are ASCII without `?`.
    /// Refusing would turn away packages in which an old tool named some
    /// other file in a local code page.
    pub name: String,
    pub method: u16,
    pub flags: u16,
    pub compressed_size: u64,
    pub size: u64,
    pub local_header: u64,
}

/// A zip archive whose central directory has been read.
pub struct ZipArchive<R> {
    reader: R,
    length: u64,
    entries: Vec<Entry>,
}

impl<R: Read + Seek> ZipArchive<R> {
    /// Reads the central directory of `reader`, a zip archive that should be
    /// `what` (for errors: "a .nupkg (a zip archive)").
    pub fn open(mut reader: R, what: &str) -> Result<Self, String> {
        let not = || format!("is not {what}");
        let length = reader.seek(SeekFrom::End(0)).map_err(|_| not())?;
        let tail_start = length.saturating_sub((END_RECORD + MAX_COMMENT) as u64);
        reader
            .seek(SeekFrom::Start(tail_start))
            .map_err(|_| not())?;
        let mut tail = vec![0; (length - tail_start) as usize];
        reader.read_exact(&mut tail).map_err(|_| not())?;
        // The last signature with a whole record after it, as readers search
        // backwards (a comment may end in the four bytes).
        let end = tail
            .len()
            .checked_sub(END_RECORD)
            .and_then(|last| {
                (0..=last)
                    .rev()
                    .find(|&at| tail[at..at + 4] == END_SIGNATURE)
            })
            .ok_or_else(not)?;
        let record = &tail[end..end + END_RECORD];
        let count = u64::from(le16(record, 10));
        let directory_size = u64::from(le32(record, 12));
        let directory_offset = u64::from(le32(record, 16));
        // All ones marks a ZIP64 archive, whose counts are elsewhere and unbounded.
        if count >= MAX_ENTRIES || directory_offset == u64::from(u32::MAX) {
            return Err(format!(
                "is refused: a package may hold fewer than {MAX_ENTRIES} entries"
            ));
        }
        // A ZIP64 locator just before the end record: Python's zipfile (and
        // so pip) then reads the directory the ZIP64 record names, whatever
        // this end record says, so it could see other entries than we do.
        let record_at = tail_start + end as u64;
        let locator_at = end.checked_sub(ZIP64_LOCATOR);
        if locator_at.is_some_and(|at| tail[at..at + 4] == ZIP64_LOCATOR_SIGNATURE) {
            return Err(format!(
                "is refused: a package may hold fewer than {MAX_ENTRIES} entries (it has a ZIP64 record)"
            ));
        }
        if directory_size > MAX_CENTRAL_DIRECTORY {
            return Err(format!(
                "is refused: its zip directory is larger than {} MiB",
                MAX_CENTRAL_DIRECTORY / (1024 * 1024)
            ));
        }
        // Exactly up to the end record, not merely before it: given a gap,
        // Python's zipfile takes every offset as shifted by it (as if data
        // were prepended) and reads the directory as the bytes just before
        // the record, so it would read other names than this reader does.
        if directory_offset + directory_size != record_at {
            return Err(format!(
                "is not {what}: its central directory does not end where its end record begins"
            ));
        }
        reader
            .seek(SeekFrom::Start(directory_offset))
            .map_err(|_| not())?;
        let mut directory = vec![0; directory_size as usize];
        reader.read_exact(&mut directory).map_err(|_| not())?;
        let entries =
            read_directory(&directory, count).map_err(|why| format!("is not {what}: {why}"))?;
        Ok(ZipArchive {
            reader,
            length,
            entries,
        })
    }

    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// The data of entry `index`, decompressed; `label` names it in errors
    /// ("has a .nuspec that …"). The caller bounds how much it reads.
    pub fn open_entry(&mut self, index: usize, label: &str) -> Result<EntryReader<'_, R>, String> {
        let entry = &self.entries[index];
        let (method, flags, compressed_size, size, local_header) = (
            entry.method,
            entry.flags,
            entry.compressed_size,
            entry.size,
            entry.local_header,
        );
        if flags & ENCRYPTED != 0 {
            return Err(format!("has an encrypted {label}, which cannot be read"));
        }
        if method != STORED && method != DEFLATED {
            return Err(format!(
                "has a {label} compressed by method {method}: only stored and deflated entries can be read"
            ));
        }
        let cannot = |why: &str| format!("has a {label} that cannot be read ({why})");
        let beyond = || cannot("its data lies beyond the end of the file");
        if local_header + LOCAL_HEADER as u64 > self.length {
            return Err(beyond());
        }
        self.reader
            .seek(SeekFrom::Start(local_header))
            .map_err(|e| cannot(&e.to_string()))?;
        let mut header = [0; LOCAL_HEADER];
        self.reader
            .read_exact(&mut header)
            .map_err(|e| cannot(&e.to_string()))?;
        if header[..4] != LOCAL_SIGNATURE {
            return Err(cannot("its local header is damaged"));
        }
        // The local header's own name and extra lengths: they may differ from
        // the central header's.
        let start = local_header
            + LOCAL_HEADER as u64
            + u64::from(le16(&header, 26))
            + u64::from(le16(&header, 28));
        if start + compressed_size > self.length {
            return Err(beyond());
        }
        self.reader
            .seek(SeekFrom::Start(start))
            .map_err(|e| cannot(&e.to_string()))?;
        let input = (&mut self.reader).take(compressed_size);
        let data = if method == STORED {
            Data::Stored(input)
        } else {
            Data::Deflated(DeflateDecoder::new(input))
        };
        Ok(EntryReader {
            data,
            size,
            produced: 0,
        })
    }
}

/// An entry's data, no more than its compressed size read from the archive.
pub struct EntryReader<'a, R> {
    data: Data<'a, R>,
    /// The size the central directory gives. Checked, because tools that
    /// stop at the declared size and tools that read to the end of the
    /// stream would read different manifests from an archive that lies.
    size: u64,
    produced: u64,
}

enum Data<'a, R> {
    Stored(Take<&'a mut R>),
    Deflated(DeflateDecoder<Take<&'a mut R>>),
}

impl<R: Read> Read for EntryReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let read = match &mut self.data {
            Data::Stored(input) => input.read(buf)?,
            Data::Deflated(input) => input.read(buf)?,
        };
        self.produced += read as u64;
        let ended = read == 0 && !buf.is_empty();
        if self.produced > self.size || (ended && self.produced != self.size) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "it is not the size its zip directory gives",
            ));
        }
        Ok(read)
    }
}

/// Walks the `count` central headers of `directory`, each wholly inside it.
fn read_directory(directory: &[u8], count: u64) -> Result<Vec<Entry>, &'static str> {
    const RUNS_PAST: &str = "a header of its central directory runs past the directory's end";
    // Every header takes 46 bytes at least: a count the directory cannot hold
    // reserves nothing more than the directory could.
    let mut entries = Vec::with_capacity((count as usize).min(directory.len() / CENTRAL_HEADER));
    let mut at = 0;
    for _ in 0..count {
        let header = directory.get(at..at + CENTRAL_HEADER).ok_or(RUNS_PAST)?;
        if header[..4] != CENTRAL_SIGNATURE {
            return Err("a header of its central directory is damaged");
        }
        let name_start = at + CENTRAL_HEADER;
        let name_end = name_start + usize::from(le16(header, 28));
        let next = name_end + usize::from(le16(header, 30)) + usize::from(le16(header, 32));
        if next > directory.len() {
            return Err(RUNS_PAST);
        }
        entries.push(Entry {
            name: name_text(&directory[name_start..name_end]),
            method: le16(header, 10),
            flags: le16(header, 8),
            compressed_size: u64::from(le32(header, 20)),
            size: u64::from(le32(header, 24)),
            local_header: u64::from(le32(header, 42)),
        });
        at = next;
    }
    // Bytes left over would be entries this reader does not see, while
    // Python's zipfile, which walks the directory to its end, does.
    if at != directory.len() {
        return Err("its central directory holds more than its end record counts");
    }
    Ok(entries)
}

fn le16(bytes: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([bytes[at], bytes[at + 1]])
}

fn le32(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

/// A name as `Entry::name` keeps it.
fn name_text(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(text) => text.to_owned(),
        Err(_) => bytes
            .iter()
            .map(|&b| if b.is_ascii() { char::from(b) } else { '?' })
            .collect(),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::io::{Cursor, Write};

    use super::*;

    const WHAT: &str = "a universal package (a zip archive)";

    /// A zip built byte by byte, for what the `zip` crate will not write
    /// (the same name twice, flags, odd methods): (name, method, flags,
    /// data as stored).
    pub(crate) fn by_hand(entries: &[(&str, u16, u16, &[u8])]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut directory = Vec::new();
        for (name, method, flags, data) in entries {
            let mut crc = flate2::Crc::new();
            crc.update(data);
            let offset = out.len() as u32;
            let size = (data.len() as u32).to_le_bytes();
            let name_len = (name.len() as u16).to_le_bytes();
            out.extend_from_slice(&LOCAL_SIGNATURE);
            out.extend_from_slice(&20u16.to_le_bytes());
            out.extend_from_slice(&flags.to_le_bytes());
            out.extend_from_slice(&method.to_le_bytes());
            out.extend_from_slice(&[0; 4]); // time, date
            out.extend_from_slice(&crc.sum().to_le_bytes());
            out.extend_from_slice(&size);
            out.extend_from_slice(&size);
            out.extend_from_slice(&name_len);
            out.extend_from_slice(&[0; 2]); // extra length
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(data);
            directory.extend_from_slice(&CENTRAL_SIGNATURE);
            directory.extend_from_slice(&[20, 0, 20, 0]); // made by, needed
            directory.extend_from_slice(&flags.to_le_bytes());
            directory.extend_from_slice(&method.to_le_bytes());
            directory.extend_from_slice(&[0; 4]); // time, date
            directory.extend_from_slice(&crc.sum().to_le_bytes());
            directory.extend_from_slice(&size);
            directory.extend_from_slice(&size);
            directory.extend_from_slice(&name_len);
            // Extra and comment lengths, disk, internal and external attributes.
            directory.extend_from_slice(&[0; 12]);
            directory.extend_from_slice(&offset.to_le_bytes());
            directory.extend_from_slice(name.as_bytes());
        }
        let directory_offset = out.len() as u32;
        let count = (entries.len() as u16).to_le_bytes();
        out.extend_from_slice(&directory);
        out.extend_from_slice(&END_SIGNATURE);
        out.extend_from_slice(&[0; 4]); // disk numbers
        out.extend_from_slice(&count);
        out.extend_from_slice(&count);
        out.extend_from_slice(&(directory.len() as u32).to_le_bytes());
        out.extend_from_slice(&directory_offset.to_le_bytes());
        out.extend_from_slice(&[0; 2]); // comment length
        out
    }

    fn refusal<T>(result: Result<T, String>) -> String {
        match result {
            Ok(_) => panic!("accepted"),
            Err(error) => error,
        }
    }

    fn end_record(zip: &[u8]) -> usize {
        zip.windows(4).rposition(|w| w == END_SIGNATURE).unwrap()
    }

    fn central_header(zip: &[u8]) -> usize {
        zip.windows(4).position(|w| w == CENTRAL_SIGNATURE).unwrap()
    }

    fn text(archive: &mut ZipArchive<Cursor<Vec<u8>>>, index: usize) -> String {
        let mut text = String::new();
        archive
            .open_entry(index, "entry")
            .unwrap()
            .read_to_string(&mut text)
            .unwrap();
        text
    }

    /// Counts the bytes read through it.
    struct Counting {
        inner: Cursor<Vec<u8>>,
        read: u64,
    }

    impl Read for Counting {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let read = self.inner.read(buf)?;
            self.read += read as u64;
            Ok(read)
        }
    }

    impl Seek for Counting {
        fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
            self.inner.seek(to)
        }
    }

    #[test]
    fn stored_and_deflated_entries_are_read() {
        let mut writer = ::zip::ZipWriter::new(Cursor::new(Vec::new()));
        let deflated = ::zip::write::SimpleFileOptions::default()
            .compression_method(::zip::CompressionMethod::Deflated);
        let stored = ::zip::write::SimpleFileOptions::default()
            .compression_method(::zip::CompressionMethod::Stored);
        let long = "squeeze me ".repeat(1000);
        writer.start_file("a/deflated.txt", deflated).unwrap();
        writer.write_all(long.as_bytes()).unwrap();
        writer.start_file("stored.txt", stored).unwrap();
        writer.write_all(b"as it is").unwrap();
        let bytes = writer.finish().unwrap().into_inner();
        let mut archive = ZipArchive::open(Cursor::new(bytes), WHAT).unwrap();
        let names: Vec<&str> = archive.entries().iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["a/deflated.txt", "stored.txt"]);
        assert_eq!(
            archive
                .entries()
                .iter()
                .map(|e| e.method)
                .collect::<Vec<_>>(),
            [DEFLATED, STORED]
        );
        assert_eq!(text(&mut archive, 0), long);
        assert_eq!(text(&mut archive, 1), "as it is");
    }

    #[test]
    fn a_lying_end_record_is_refused_before_the_directory_is_read() {
        // 1,500 real central headers with 1 KiB names; the end record says
        // the directory is 100 bytes, where the `zip` crate walked them all.
        let names: Vec<String> = (0..1500)
            .map(|i| format!("{i:04}{}", "n".repeat(1020)))
            .collect();
        let entries: Vec<(&str, u16, u16, &[u8])> = names
            .iter()
            .map(|n| (n.as_str(), STORED, 0u16, &b""[..]))
            .collect();
        let mut zip = by_hand(&entries);
        let end = end_record(&zip);
        zip[end + 12..end + 16].copy_from_slice(&100u32.to_le_bytes());
        let mut counting = Counting {
            inner: Cursor::new(zip),
            read: 0,
        };
        assert_eq!(
            refusal(ZipArchive::open(&mut counting, WHAT)),
            "is not a universal package (a zip archive): its central directory does not end where its end record begins"
        );
        // Only the tail searched for the end record was read.
        assert!(
            counting.read <= (END_RECORD + MAX_COMMENT) as u64,
            "{}",
            counting.read
        );
    }

    #[test]
    fn a_header_running_past_the_declared_directory_is_refused() {
        // A 100-byte directory just before the end record, whose one header
        // claims a 1 KiB name (and 1,500 entries): read no further than 100 bytes.
        let mut zip = Vec::new();
        zip.extend_from_slice(&CENTRAL_SIGNATURE);
        zip.extend_from_slice(&[0; 24]);
        zip.extend_from_slice(&1024u16.to_le_bytes()); // name length
        zip.extend_from_slice(&[0; 16]);
        zip.resize(100, b'n');
        zip.extend_from_slice(&END_SIGNATURE);
        zip.extend_from_slice(&[0; 4]);
        zip.extend_from_slice(&1500u16.to_le_bytes());
        zip.extend_from_slice(&1500u16.to_le_bytes());
        zip.extend_from_slice(&100u32.to_le_bytes());
        zip.extend_from_slice(&0u32.to_le_bytes());
        zip.extend_from_slice(&[0; 2]);
        assert_eq!(
            refusal(ZipArchive::open(Cursor::new(zip), WHAT)),
            "is not a universal package (a zip archive): a header of its central directory runs past the directory's end"
        );
    }

    #[test]
    fn the_count_must_match_the_directory() {
        let zip = by_hand(&[("a", STORED, 0, b"1"), ("b", STORED, 0, b"2")]);
        let end = end_record(&zip);
        let mut more = zip.clone();
        more[end + 10..end + 12].copy_from_slice(&3u16.to_le_bytes());
        assert_eq!(
            refusal(ZipArchive::open(Cursor::new(more), WHAT)),
            "is not a universal package (a zip archive): a header of its central directory runs past the directory's end"
        );
        let mut fewer = zip.clone();
        fewer[end + 10..end + 12].copy_from_slice(&1u16.to_le_bytes());
        assert_eq!(
            refusal(ZipArchive::open(Cursor::new(fewer), WHAT)),
            "is not a universal package (a zip archive): its central directory holds more than its end record counts"
        );
        let mut damaged = zip;
        let at = central_header(&damaged);
        damaged[at + 3] = 0;
        assert_eq!(
            refusal(ZipArchive::open(Cursor::new(damaged), WHAT)),
            "is not a universal package (a zip archive): a header of its central directory is damaged"
        );
    }

    #[test]
    fn zip64_and_oversized_directories_are_refused() {
        let zip = by_hand(&[("a", STORED, 0, b"1")]);
        let end = end_record(&zip);
        let mut entries = zip.clone();
        entries[end + 10..end + 12].copy_from_slice(&[0xff; 2]);
        let mut offset = zip.clone();
        offset[end + 16..end + 20].copy_from_slice(&[0xff; 4]);
        for zip64 in [entries, offset] {
            assert_eq!(
                refusal(ZipArchive::open(Cursor::new(zip64), WHAT)),
                "is refused: a package may hold fewer than 65535 entries"
            );
        }
        // A ZIP64 locator before the end record, which Python would follow.
        let mut located = zip.clone();
        let mut locator = b"PK\x06\x07".to_vec();
        locator.resize(20, 0);
        located.splice(end..end, locator);
        assert_eq!(
            refusal(ZipArchive::open(Cursor::new(located), WHAT)),
            "is refused: a package may hold fewer than 65535 entries (it has a ZIP64 record)"
        );
        let mut large = zip;
        large[end + 12..end + 16].copy_from_slice(&(16 * 1024 * 1024 + 1u32).to_le_bytes());
        assert_eq!(
            refusal(ZipArchive::open(Cursor::new(large), WHAT)),
            "is refused: its zip directory is larger than 16 MiB"
        );
        assert_eq!(
            refusal(ZipArchive::open(
                Cursor::new(b"PK\x05\x06 too short".to_vec()),
                WHAT
            )),
            "is not a universal package (a zip archive)"
        );
    }

    #[test]
    fn a_comment_ending_in_the_signature_does_not_hide_the_end_record() {
        let mut zip = by_hand(&[("upack.json", STORED, 0, b"{}")]);
        let end = end_record(&zip);
        zip[end + 20..end + 22].copy_from_slice(&4u16.to_le_bytes());
        zip.extend_from_slice(&END_SIGNATURE);
        let archive = ZipArchive::open(Cursor::new(zip), WHAT).unwrap();
        assert_eq!(archive.entries()[0].name, "upack.json");
    }

    #[test]
    fn names_that_are_not_utf8_keep_their_size() {
        let mut zip = by_hand(&[("xupack.json", STORED, 0, b"{}")]);
        let at = central_header(&zip);
        zip[at + CENTRAL_HEADER] = 0xff;
        let archive = ZipArchive::open(Cursor::new(zip), WHAT).unwrap();
        assert_eq!(archive.entries()[0].name, "?upack.json");
    }

    #[test]
    fn entries_that_cannot_be_read_are_refused() {
        let mut encrypted = ZipArchive::open(
            Cursor::new(by_hand(&[("upack.json", STORED, 1, b"{}")])),
            WHAT,
        )
        .unwrap();
        assert_eq!(
            refusal(encrypted.open_entry(0, "upack.json")),
            "has an encrypted upack.json, which cannot be read"
        );
        let mut bzip2 =
            ZipArchive::open(Cursor::new(by_hand(&[("upack.json", 12, 0, b"{}")])), WHAT).unwrap();
        assert_eq!(
            refusal(bzip2.open_entry(0, "upack.json")),
            "has a upack.json compressed by method 12: only stored and deflated entries can be read"
        );

        let zip = by_hand(&[("upack.json", STORED, 0, b"{}")]);
        let at = central_header(&zip);
        let beyond = zip.len() as u32 + 10;
        let mut far_header = zip.clone();
        far_header[at + 42..at + 46].copy_from_slice(&beyond.to_le_bytes());
        let mut far_data = zip.clone();
        far_data[at + 20..at + 24].copy_from_slice(&beyond.to_le_bytes());
        for zip in [far_header, far_data] {
            let mut archive = ZipArchive::open(Cursor::new(zip), WHAT).unwrap();
            assert_eq!(
                refusal(archive.open_entry(0, "upack.json")),
                "has a upack.json that cannot be read (its data lies beyond the end of the file)"
            );
        }
        let mut damaged = zip.clone();
        damaged[0] = b'Q';
        let mut archive = ZipArchive::open(Cursor::new(damaged), WHAT).unwrap();
        assert_eq!(
            refusal(archive.open_entry(0, "upack.json")),
            "has a upack.json that cannot be read (its local header is damaged)"
        );

        // A directory that says 99 bytes of an entry holding 2.
        let mut wrong_size = zip;
        wrong_size[at + 24..at + 28].copy_from_slice(&99u32.to_le_bytes());
        let mut archive = ZipArchive::open(Cursor::new(wrong_size), WHAT).unwrap();
        let error = archive
            .open_entry(0, "upack.json")
            .unwrap()
            .read_to_end(&mut Vec::new())
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            "it is not the size its zip directory gives"
        );
    }
}
