//! One compressor per response, fed chunk by chunk.
use super::Encoding;
use std::io::Write;

/// gzip level 4, brotli quality 4 (window 2^18), zstd level 3: fast settings meant for answers compressed
/// on every request (precompress static files for the best ratios).
pub enum Encoder {
    Gzip(flate2::write::GzEncoder<Vec<u8>>),
    Br(Box<brotli::CompressorWriter<Vec<u8>>>),
    Zstd(zstd::stream::write::Encoder<'static, Vec<u8>>),
}

impl Encoder {
    pub fn new(encoding: Encoding) -> Encoder {
        match encoding {
            Encoding::Gzip => Encoder::Gzip(flate2::write::GzEncoder::new(
                Vec::new(),
                flate2::Compression::new(4),
            )),
            // A 256 KiB window (lgwin 18): brotli's default 4 MiB one is allocated per answer
            // and cost more than the compression itself on a 100 KB JSON (bench/compress).
            Encoding::Br => Encoder::Br(Box::new(brotli::CompressorWriter::new(
                Vec::new(),
                4096,
                4,
                18,
            ))),
            Encoding::Zstd => Encoder::Zstd(
                zstd::stream::write::Encoder::new(Vec::new(), 3)
                    .expect("zstd accepts level 3 with an in-memory sink"),
            ),
        }
    }

    /// Compresses `data` and flushes, returning every byte produced so far.
    pub fn chunk(&mut self, data: &[u8]) -> Vec<u8> {
        // Writing to a Vec cannot fail.
        let (sink, _) = match self {
            Encoder::Gzip(e) => (e.write_all(data).and_then(|()| e.flush()), ()),
            Encoder::Br(e) => (e.write_all(data).and_then(|()| e.flush()), ()),
            Encoder::Zstd(e) => (e.write_all(data).and_then(|()| e.flush()), ()),
        };
        debug_assert!(sink.is_ok());
        std::mem::take(self.buffer())
    }

    /// Ends the stream, returning the last bytes.
    pub fn finish(self) -> Vec<u8> {
        match self {
            Encoder::Gzip(e) => e.finish().unwrap_or_default(),
            Encoder::Br(e) => e.into_inner(),
            Encoder::Zstd(e) => e.finish().unwrap_or_default(),
        }
    }

    fn buffer(&mut self) -> &mut Vec<u8> {
        match self {
            Encoder::Gzip(e) => e.get_mut(),
            Encoder::Br(e) => e.get_mut(),
            Encoder::Zstd(e) => e.get_mut(),
        }
    }
}
