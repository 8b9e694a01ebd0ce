use super::*;

fn skip_all(b: &[u8]) -> Result<usize> {
    let mut r = Reader::new(b);
    r.skip_value()?;
    Ok(r.pos())
}

/// Skipping `b` consumes exactly all of it, and every proper prefix is cut short.
fn skips_exactly(b: &[u8]) {
    assert_eq!(skip_all(b), Ok(b.len()), "{b:02x?}");
    for cut in 0..b.len() {
        assert_eq!(
            skip_all(&b[..cut]),
            Err(Error::Eof),
            "{b:02x?} cut at {cut}"
        );
    }
}

fn encoded(s: &str) -> Vec<u8> {
    let mut out = Vec::new();
    write_string(&mut out, s);
    out
}

#[test]
fn strings_in_every_form() {
    // Short: length in the tag.
    let mut r = Reader::new(b"\x05hello");
    let s = r.string().unwrap();
    assert_eq!((s.span, s.bytes, s.units), (0..6, Some(1..6), 5));
    // Medium: 0x30-0x33 + one byte.
    let medium = encoded(&"m".repeat(300));
    assert_eq!(&medium[..2], &[0x31, 0x2c]);
    let s = Reader::new(&medium).string().unwrap();
    assert_eq!((s.bytes, s.units), (Some(2..302), 300));
    // `S` + u16 above 1023.
    let long = encoded(&"s".repeat(2000));
    assert_eq!(&long[..3], &[b'S', 0x07, 0xd0]);
    assert_eq!(Reader::new(&long).read_string().unwrap(), "s".repeat(2000));
    // Chunked: hessian.js and Java write 40000 chars as R(32768) + S(7232).
    let text: String = (0..40000)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    let chunked = encoded(&text);
    assert_eq!(&chunked[..3], &[b'R', 0x80, 0x00]);
    assert_eq!(&chunked[3 + 32768..3 + 32768 + 3], &[b'S', 0x1c, 0x40]);
    let mut r = Reader::new(&chunked);
    let s = r.string().unwrap();
    assert_eq!((s.span, s.bytes, s.units), (0..chunked.len(), None, 40000));
    assert_eq!(Reader::new(&chunked).read_string().unwrap(), text);
    // A chunk may be followed by any string form, e.g. a short one.
    let mut mixed = vec![b'R', 0, 2, b'a', b'b'];
    mixed.extend_from_slice(b"\x01c");
    assert_eq!(Reader::new(&mixed).read_string().unwrap(), "abc");
    skips_exactly(&mixed);
    // ... but nothing else.
    assert_eq!(
        Reader::new(b"R\x00\x01a\x90").string(),
        Err(Error::Tag(0x90))
    );
    // Empty and null.
    assert_eq!(Reader::new(b"\x00").read_string().unwrap(), "");
    assert_eq!(Reader::new(b"N").string_or_null(), Ok(None));
    assert_eq!(Reader::new(b"N").string(), Err(Error::Tag(b'N')));
    assert_eq!(Reader::new(b"\x90").string(), Err(Error::Tag(0x90)));
    skips_exactly(&medium);
    skips_exactly(&long);
}

#[test]
fn string_lengths_count_utf16_units() {
    // Captured from hessian.js: "é€😀" is 4 chars; 😀 is two 3-byte surrogates.
    let wire = [
        0x04, 0xc3, 0xa9, 0xe2, 0x82, 0xac, 0xed, 0xa0, 0xbd, 0xed, 0xb8, 0x80,
    ];
    assert_eq!(encoded("é€😀"), wire);
    let s = Reader::new(&wire).string().unwrap();
    assert_eq!((s.bytes, s.units), (Some(1..12), 4));
    assert_eq!(Reader::new(&wire).read_string().unwrap(), "é€😀");
    // A 4-byte UTF-8 sequence (non-Java encoders) counts as 2 units.
    let utf8 = [0x02, 0xf0, 0x9f, 0x98, 0x80];
    assert_eq!(Reader::new(&utf8).read_string().unwrap(), "😀");
    skips_exactly(&utf8);
    // ... and cannot be half of a 1-unit string.
    assert_eq!(
        Reader::new(&[0x01, 0xf0, 0x9f, 0x98, 0x80]).string(),
        Err(Error::BadChar)
    );
    // A continuation byte or 0xf8.. cannot start a character.
    assert_eq!(Reader::new(&[0x01, 0x80]).string(), Err(Error::BadChar));
    assert_eq!(Reader::new(&[0x01, 0xff]).string(), Err(Error::BadChar));
    // A character cut short.
    assert_eq!(Reader::new(&[0x01, 0xe2, 0x82]).string(), Err(Error::Eof));
    // A lone surrogate decodes to U+FFFD rather than failing.
    assert_eq!(
        Reader::new(&[0x01, 0xed, 0xa0, 0xbd])
            .read_string()
            .unwrap(),
        "\u{fffd}"
    );
    // Java never splits a surrogate pair across chunks: 32767 'a' + 😀 makes a first
    // chunk of 32767 units.
    let text = format!("{}😀b", "a".repeat(32767));
    let w = encoded(&text);
    assert_eq!(&w[..3], &[b'R', 0x7f, 0xff]);
    assert_eq!(Reader::new(&w).read_string().unwrap(), text);
    assert_eq!(Reader::new(&w).string().unwrap().units, 32770);
}

#[test]
fn ints_and_longs() {
    for (wire, want) in [
        (&[0x90][..], 0),
        (&[0x80], -16),
        (&[0xbf], 47),
        (&[0xc8, 0x30], 48),
        (&[0xc0, 0x00], -2048),
        (&[0xd4, 0x08, 0x00], 2048),
        (&[0xd0, 0x00, 0x00], -262144),
        (&[b'I', 0x7f, 0xff, 0xff, 0xff], i32::MAX),
        (&[b'I', 0x80, 0, 0, 0], i32::MIN),
    ] {
        assert_eq!(Reader::new(wire).int(), Ok(want), "{wire:02x?}");
        skips_exactly(wire);
    }
    for v in [
        0,
        -16,
        47,
        48,
        -17,
        2047,
        -2048,
        2048,
        -2049,
        262143,
        -262144,
        262144,
        i32::MAX,
        i32::MIN,
    ] {
        let mut w = Vec::new();
        write_int(&mut w, v);
        assert_eq!(Reader::new(&w).int(), Ok(v));
    }
    for (wire, want) in [
        (&[0xe0][..], 0i64),
        (&[0xd8], -8),
        (&[0xef], 15),
        (&[0xf8, 0x10], 16),
        (&[0xf0, 0x00], -2048),
        (&[0x3c, 0x10, 0x00], 4096),
        (&[0x38, 0x00, 0x00], -262144),
        (&[b'Y', 0x00, 0x04, 0x00, 0x00], 262144),
        (&[b'L', 0x80, 0, 0, 0, 0, 0, 0, 0], i64::MIN),
    ] {
        assert_eq!(Reader::new(wire).long(), Ok(want), "{wire:02x?}");
        skips_exactly(wire);
    }
    assert_eq!(Reader::new(&[0x91]).long(), Ok(1));
    assert_eq!(Reader::new(b"N").int(), Err(Error::Tag(b'N')));
    assert_eq!(Reader::new(&[]).int(), Err(Error::Eof));
}

#[test]
fn scalars_doubles_dates_binary() {
    for wire in [
        &b"N"[..],
        b"T",
        b"F",
        &[0x5b],
        &[0x5c],
        &[0x5d, 0x80],
        &[0x5e, 0x01, 0x00],
        &[0x5f, 0x00, 0x00, 0x00, 0x64],
        &[b'D', 0x3f, 0xf8, 0, 0, 0, 0, 0, 0],
        &[b'J', 0, 0, 0x01, 0x8f, 0, 0, 0, 0],
        &[b'K', 0, 0x1b, 0x9e, 0x80],
        &[0x20],
        &[0x23, 1, 2, 3],
        &[0x34, 0x02, 0xaa, 0xbb],
        &[b'B', 0x00, 0x02, 0xaa, 0xbb],
        &[b'A', 0x00, 0x01, 0xaa, b'B', 0x00, 0x01, 0xbb],
        &[b'A', 0x00, 0x01, 0xaa, 0x21, 0xbb],
    ] {
        skips_exactly(wire);
    }
    // A binary chunk followed by something other than a binary chunk.
    assert_eq!(skip_all(&[b'A', 0, 1, 0xaa, 0x05]), Err(Error::Tag(0x05)));
}

#[test]
fn lists_and_maps() {
    for wire in [
        // Fixed typed list `V`, type name, int length, values.
        &b"V\x04[int\x92\x91\x92"[..],
        // ... with a type index instead of a name.
        b"V\x90\x92\x91\x92",
        // Fixed untyped `X`.
        b"X\x92\x01a\x01b",
        // Variable typed `U` and untyped `W`, ended by `Z`.
        b"U\x04[int\x91\x92Z",
        b"W\x91\x01aNZ",
        // Compact typed (0x70 + n) and untyped (0x78 + n).
        b"\x72\x0ejava.util.List\x91\x92",
        b"\x7a\x91\x92",
        b"\x78",
        // Untyped and typed maps; values of any kind, nested.
        b"H\x01k\x01v\x91W\x90ZZ",
        b"M\x11java.util.HashMap\x01kTZ",
        b"HZ",
        // A reference to an earlier value.
        b"Q\x90",
    ] {
        skips_exactly(wire);
    }
    // A map with a key but no value.
    assert_eq!(skip_all(b"H\x01kZ"), Err(Error::Tag(b'Z')));
    // Negative lengths.
    assert_eq!(skip_all(b"X\x8f"), Err(Error::BadLength));
    // A huge length walks the input, never allocates: cut short.
    assert_eq!(skip_all(b"XI\x7f\xff\xff\xff\x90"), Err(Error::Eof));
}

#[test]
fn objects_and_class_definitions() {
    // Class def #0 (2 fields) and its compact instance, as one value; then an `O`
    // instance and another compact one of the same def.
    let mut wire = b"C\x14com.alipay.test.User\x92\x04name\x03age".to_vec();
    wire.extend_from_slice(b"\x60\x03bob\x97");
    skips_exactly(&wire);
    let mut r = Reader::new(&wire);
    r.skip_value().unwrap();
    let mut more = wire.clone();
    more.extend_from_slice(b"O\x90\x03amyN\x60\x01x\x91");
    let mut r2 = Reader::new(&more);
    for _ in 0..3 {
        r2.skip_value().unwrap();
    }
    assert!(r2.is_at_end());
    // An instance of an undefined class.
    assert_eq!(skip_all(b"\x60\x90"), Err(Error::NoClass));
    assert_eq!(skip_all(b"O\x91"), Err(Error::NoClass));
    // A class def is not a value by itself.
    assert_eq!(skip_all(b"C\x01A\x90Z"), Err(Error::Tag(b'Z')));
    assert_eq!(skip_all(b"C\x01A\x8f"), Err(Error::BadLength));
}

#[test]
fn the_worked_example_of_eight_arguments() {
    // docs/xprotocol-wire.md 5.3: dubbo-remoting's request with eight arguments.
    let mut b: Vec<u8> = vec![0x93, 0x59, 0x00, 0x04, 0x93, 0xe0];
    b.extend_from_slice(b"C\x14com.alipay.test.User\x92\x04name\x03age");
    b.extend_from_slice(b"\x60\x03bob\x97");
    b.extend_from_slice(b"\x60\x03amy\x99");
    b.extend_from_slice(b"\x72\x0ejava.util.List\x91\x92");
    b.extend_from_slice(b"H\x01k\x01vZ");
    b.extend_from_slice(b"T");
    b.extend_from_slice(&[0x5f, 0x00, 0x00, 0x05, 0xdc]);
    b.extend_from_slice(b"H\x05dubbo\x055.3.0\x05group\x02g1Z");
    let mut r = Reader::new(&b);
    for _ in 0..8 {
        r.skip_value().unwrap();
    }
    let mut pairs = Vec::new();
    r.string_map(|k, v| pairs.push((k.bytes.unwrap(), v.bytes.unwrap())))
        .unwrap();
    assert!(r.is_at_end());
    let pairs: Vec<_> = pairs.into_iter().map(|(k, v)| (&b[k], &b[v])).collect();
    assert_eq!(
        pairs,
        [(&b"dubbo"[..], &b"5.3.0"[..]), (&b"group"[..], &b"g1"[..])]
    );
}

#[test]
fn string_maps_skip_other_entries() {
    let wire = b"M\x08java.Map\x01a\x011\x01b\x91\x91\x01c\x01d\x02eeZ";
    let mut got = Vec::new();
    Reader::new(wire)
        .string_map(|k, v| got.push((k.units, v.units)))
        .unwrap();
    assert_eq!(got, [(1, 1), (1, 2)]);
    let mut n = 0;
    Reader::new(b"N").string_map(|_, _| n += 1).unwrap();
    assert_eq!(n, 0);
    assert_eq!(
        Reader::new(b"\x90").string_map(|_, _| ()),
        Err(Error::Tag(0x90))
    );
    assert_eq!(
        Reader::new(b"H\x01a").string_map(|_, _| ()),
        Err(Error::Eof)
    );
}

#[test]
fn nesting_is_limited_and_bad_tags_refused() {
    let nested = |n: usize| {
        let mut w = vec![b'W'; n];
        w.resize(2 * n, b'Z');
        w
    };
    skips_exactly(&nested(MAX_DEPTH as usize));
    assert_eq!(
        skip_all(&nested(MAX_DEPTH as usize + 2)),
        Err(Error::TooDeep)
    );
    // Deep maps and objects too.
    let mut maps = vec![b'H'; 1000];
    maps.resize(2000, b'Z');
    assert_eq!(skip_all(&maps), Err(Error::TooDeep));
    // Many class defs in a row are a loop, not recursion.
    let mut defs = Vec::new();
    for _ in 0..10_000 {
        defs.extend_from_slice(b"C\x01A\x90");
    }
    defs.push(0x60);
    assert_eq!(skip_all(&defs), Ok(defs.len()));
    for tag in [b'Z', b'@', b'E', b'G', b'P'] {
        assert_eq!(skip_all(&[tag]), Err(Error::Tag(tag)));
    }
    assert_eq!(skip_all(&[]), Err(Error::Eof));
}

#[test]
fn every_byte_pair_and_random_input_is_handled() {
    // Every one- and two-byte input, and each with a tail: no panic.
    for a in 0..=255u8 {
        for b in 0..=255u8 {
            let _ = skip_all(&[a, b]);
            let _ = skip_all(&[a, b, 0x91, 0x01, b'x', b'Z']);
            let _ = Reader::new(&[a, b, 0x41]).read_string();
            let _ = Reader::new(&[a, b, 0x41]).string_map(|_, _| ());
        }
    }
}
