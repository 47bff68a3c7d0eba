//! A check of a TIFF file's first directory before the `image` crate's TIFF decoder sees it.
//!
//! That decoder reads the first image file directory (IFD) before any [`DecodeLimits`] apply,
//! and it reserves memory for a tag's declared number of values before reading them (up to
//! 256 MiB for one tag, zero-filled for text tags). A forged count in a file of a few bytes
//! would therefore make it reserve far more than the file could hold. A valid file holds every
//! value it declares, so a tag whose values need more bytes than the whole file is refused here
//! as corrupt; what the decoder reserves for tags is then bounded by the file's size.
//!
//! [`DecodeLimits`]: super::DecodeLimits

use super::ImageError;

/// Checks that no tag of the first IFD declares more value bytes than the file has.
///
/// # Errors
/// [`ImageError::Decode`] naming the tag. A file whose layout cannot be followed this far (no
/// TIFF signature, a directory past the end) is left to the decoder, which rejects it with its
/// own message.
pub(super) fn check_first_directory(bytes: &[u8]) -> Result<(), ImageError> {
    let Some(layout) = Layout::of(bytes) else {
        return Ok(());
    };
    let (offset, entry_count, value_count, entry) = layout.widths();
    let header = if layout.big { 8 } else { 4 };
    let Some(directory) = layout.read(bytes, header, offset) else {
        return Ok(());
    };
    let Some(entries) = layout.read(bytes, directory, entry_count) else {
        return Ok(());
    };
    let file_len = bytes.len() as u64;
    let first_entry = directory + entry_count;
    // Entries past the end are never read: the decoder fails there.
    let readable = entries.min(file_len.saturating_sub(first_entry) / entry);
    for at in (0..readable).map(|index| first_entry + index * entry) {
        let (Some(tag), Some(kind), Some(count)) = (
            layout.read(bytes, at, 2),
            layout.read(bytes, at + 2, 2),
            layout.read(bytes, at + 4, value_count),
        ) else {
            return Ok(());
        };
        let Some(size) = value_size(kind) else {
            continue; // a type whose values the decoder does not read
        };
        if count.checked_mul(size).is_none_or(|total| total > file_len) {
            return Err(ImageError::Decode(
                format!(
                    "TIFF tag {tag} declares {count} values of {size} bytes, more than the \
                     whole file ({file_len} bytes)"
                )
                .into(),
            ));
        }
    }
    Ok(())
}

/// The byte order and flavour (classic or BigTIFF) from the header.
struct Layout {
    little_endian: bool,
    big: bool,
}

impl Layout {
    fn of(bytes: &[u8]) -> Option<Self> {
        let little_endian = match bytes.get(..2)? {
            b"II" => true,
            b"MM" => false,
            _ => return None,
        };
        let mut layout = Self {
            little_endian,
            big: false,
        };
        layout.big = match layout.read(bytes, 2, 2)? {
            42 => false,
            43 => true,
            _ => return None,
        };
        Some(layout)
    }

    /// Bytes of an offset, of a directory's entry count, of an entry's value count and of an
    /// entry: 4, 2, 4, 12 in classic TIFF; 8, 8, 8, 20 in BigTIFF (whose first offset sits
    /// after 4 more header bytes).
    fn widths(&self) -> (u64, u64, u64, u64) {
        if self.big {
            (8, 8, 8, 20)
        } else {
            (4, 2, 4, 12)
        }
    }

    /// The unsigned number of `width` bytes (at most 8) at `at`, or `None` past the end.
    fn read(&self, bytes: &[u8], at: u64, width: u64) -> Option<u64> {
        let start = usize::try_from(at).ok()?;
        let field = bytes.get(start..start.checked_add(usize::try_from(width).ok()?)?)?;
        let fold = |value: u64, &byte: &u8| (value << 8) | u64::from(byte);
        Some(if self.little_endian {
            field.iter().rev().fold(0, fold)
        } else {
            field.iter().fold(0, fold)
        })
    }
}

/// Bytes per value of a TIFF field type, for the types the decoder reads.
fn value_size(kind: u64) -> Option<u64> {
    match kind {
        1 | 2 | 6 | 7 => Some(1),   // BYTE, ASCII, SBYTE, UNDEFINED
        3 | 8 => Some(2),           // SHORT, SSHORT
        4 | 9 | 11 | 13 => Some(4), // LONG, SLONG, FLOAT, IFD
        5 | 10 | 12 => Some(8),     // RATIONAL, SRATIONAL, DOUBLE
        16..=18 => Some(8),         // LONG8, SLONG8, IFD8
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A classic little-endian TIFF whose only tag has the given type and count.
    fn one_tag(kind: u16, count: u32) -> Vec<u8> {
        let mut bytes = b"II\x2a\x00\x08\x00\x00\x00".to_vec(); // header, IFD at 8
        bytes.extend_from_slice(&1u16.to_le_bytes());
        bytes.extend_from_slice(&270u16.to_le_bytes()); // ImageDescription
        bytes.extend_from_slice(&kind.to_le_bytes());
        bytes.extend_from_slice(&count.to_le_bytes());
        bytes.extend_from_slice(&26u32.to_le_bytes()); // values right after the IFD
        bytes.extend_from_slice(&0u32.to_le_bytes()); // no next IFD
        bytes.extend_from_slice(b"hello\0");
        bytes
    }

    #[test]
    fn counts_that_fit_in_the_file_pass() {
        assert!(check_first_directory(&one_tag(2, 6)).is_ok());
        // 32 bytes of file: four DOUBLEs fit, five do not.
        assert!(check_first_directory(&one_tag(12, 4)).is_ok());
        assert!(check_first_directory(&one_tag(12, 5)).is_err());
    }

    #[test]
    fn a_forged_count_is_refused_naming_the_tag() {
        let err = check_first_directory(&one_tag(2, 200_000_000)).expect_err("forged");
        let ImageError::Decode(source) = err else {
            panic!("{err:?}")
        };
        assert!(source.to_string().contains("tag 270"), "{source}");
    }

    #[test]
    fn big_endian_and_bigtiff_are_read() {
        let mut big = b"MM\x00\x2a\x00\x00\x00\x08\x00\x01\x01\x0e\x00\x02".to_vec();
        big.extend_from_slice(&u32::MAX.to_be_bytes());
        big.extend_from_slice(&[0; 8]);
        assert!(check_first_directory(&big).is_err());
        // BigTIFF: magic 43, offset size 8, IFD at 16, one entry with a 2^40 count.
        let mut bigtiff = b"II\x2b\x00\x08\x00\x00\x00".to_vec();
        bigtiff.extend_from_slice(&16u64.to_le_bytes());
        bigtiff.extend_from_slice(&1u64.to_le_bytes());
        bigtiff.extend_from_slice(&270u16.to_le_bytes());
        bigtiff.extend_from_slice(&2u16.to_le_bytes());
        bigtiff.extend_from_slice(&(1u64 << 40).to_le_bytes());
        bigtiff.extend_from_slice(&[0; 16]);
        assert!(check_first_directory(&bigtiff).is_err());
    }

    #[test]
    fn what_is_not_a_readable_directory_is_left_to_the_decoder() {
        for bytes in [
            &b""[..],
            b"II",
            b"II\x2a\x00",
            b"XX\x2a\x00\x08\x00\x00\x00",
            b"II\x2a\x00\xff\xff\x00\x00",
        ] {
            assert!(check_first_directory(bytes).is_ok());
        }
    }
}
