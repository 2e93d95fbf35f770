//! `Accept-Encoding` (RFC 9110 12.5.3) against the encodings rr offers.
use http::header::GetAll;
use http::HeaderValue;

/// A content coding rr can produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Encoding {
    Gzip,
    Br,
    Zstd,
}

impl Encoding {
    pub fn as_str(self) -> &'static str {
        match self {
            Encoding::Gzip => "gzip",
            Encoding::Br => "br",
            Encoding::Zstd => "zstd",
        }
    }

    pub fn from_name(name: &str) -> Option<Encoding> {
        match name.to_ascii_lowercase().as_str() {
            "gzip" | "x-gzip" => Some(Encoding::Gzip),
            "br" => Some(Encoding::Br),
            "zstd" => Some(Encoding::Zstd),
            _ => None,
        }
    }

    /// The file name suffix of a precompressed sibling (`app.css.br`).
    pub fn suffix(self) -> &'static str {
        match self {
            Encoding::Gzip => ".gz",
            Encoding::Br => ".br",
            Encoding::Zstd => ".zst",
        }
    }
}

/// The encoding of `offered` (in rr's order of preference) the client weighs highest; `None`
/// when it accepts none of them (no header, `identity` only, or all at `q=0`).
pub fn negotiate(accept: GetAll<'_, HeaderValue>, offered: &[Encoding]) -> Option<Encoding> {
    // q in thousandths, per offered encoding; `*` covers the ones not named.
    let mut named: [Option<u16>; 3] = [None; 3];
    let mut star: Option<u16> = None;
    let mut any = false;
    for value in accept {
        let Ok(text) = value.to_str() else { continue };
        for item in text.split(',') {
            let mut params = item.split(';');
            let coding = params.next().unwrap_or("").trim();
            if coding.is_empty() {
                continue;
            }
            any = true;
            let q = params
                .filter_map(|p| {
                    p.trim()
                        .strip_prefix("q=")
                        .or_else(|| p.trim().strip_prefix("Q="))
                })
                .next()
                .map_or(Some(1000), parse_q);
            let Some(q) = q else { continue };
            if coding == "*" {
                star = Some(q);
            } else if let Some(e) = Encoding::from_name(coding) {
                named[e as usize] = Some(q);
            }
        }
    }
    if !any {
        return None;
    }
    let mut best: Option<(Encoding, u16)> = None;
    for &e in offered {
        let q = named[e as usize].or(star).unwrap_or(0);
        if q > 0 && best.is_none_or(|(_, b)| q > b) {
            best = Some((e, q));
        }
    }
    best.map(|(e, _)| e)
}

/// `0`, `0.5`, `1`, `1.000`: thousandths; anything else is ignored (the item is skipped).
fn parse_q(text: &str) -> Option<u16> {
    let (int, frac) = text.split_once('.').unwrap_or((text, ""));
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let frac_value = format!("{frac:0<3}").parse::<u16>().ok()?;
    match int {
        "0" => Some(frac_value),
        "1" if frac_value == 0 => Some(1000),
        _ => None,
    }
}
