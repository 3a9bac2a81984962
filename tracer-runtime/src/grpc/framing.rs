//! gRPC message framing: a 1-byte compressed flag, a 4-byte big-endian length, the payload.

/// What [`Frames`] finds in a byte stream.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum FrameEvent<'a> {
    /// A message starts: its compressed flag and length.
    Start { compressed: bool, len: u32 },
    /// Some of its payload.
    Bytes(&'a [u8]),
    /// It is complete.
    End,
}

/// Finds gRPC message boundaries (1-byte flag, 4-byte length, payload) in a byte stream split
/// into arbitrary chunks.
#[derive(Debug, Default)]
pub(crate) struct Frames {
    header: [u8; 5],
    header_len: usize,
    remaining: u64,
}

impl Frames {
    pub(crate) fn feed(&mut self, mut data: &[u8], mut on: impl FnMut(FrameEvent<'_>)) {
        while !data.is_empty() {
            if self.remaining > 0 {
                let n = usize::try_from(self.remaining)
                    .unwrap_or(usize::MAX)
                    .min(data.len());
                on(FrameEvent::Bytes(&data[..n]));
                self.remaining -= n as u64;
                data = &data[n..];
                if self.remaining == 0 {
                    on(FrameEvent::End);
                }
                continue;
            }
            let n = (5 - self.header_len).min(data.len());
            self.header[self.header_len..self.header_len + n].copy_from_slice(&data[..n]);
            self.header_len += n;
            data = &data[n..];
            if self.header_len == 5 {
                let len = u32::from_be_bytes([
                    self.header[1],
                    self.header[2],
                    self.header[3],
                    self.header[4],
                ]);
                on(FrameEvent::Start {
                    compressed: self.header[0] & 1 == 1,
                    len,
                });
                self.remaining = u64::from(len);
                self.header_len = 0;
                if len == 0 {
                    on(FrameEvent::End);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_split_anywhere() {
        let mut stream = Vec::new();
        for (flag, payload) in [(0u8, vec![1u8; 3]), (1, vec![]), (0, vec![7; 300])] {
            stream.push(flag);
            stream.extend_from_slice(&(payload.len() as u32).to_be_bytes());
            stream.extend_from_slice(&payload);
        }
        for chunk in [1, 2, 3, 5, 7, 64, 1000] {
            let mut f = Frames::default();
            let mut seen = Vec::new();
            let mut bytes = 0;
            let mut ends = 0;
            for c in stream.chunks(chunk) {
                f.feed(c, |ev| match ev {
                    FrameEvent::Start { compressed, len } => seen.push((compressed, len)),
                    FrameEvent::Bytes(b) => bytes += b.len(),
                    FrameEvent::End => ends += 1,
                });
            }
            assert_eq!((bytes, ends), (303, 3), "chunks of {chunk}");
            assert_eq!(
                seen,
                [(false, 3), (true, 0), (false, 300)],
                "chunks of {chunk}"
            );
        }
    }
}
