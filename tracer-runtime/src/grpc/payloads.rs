//! Opt-in payload events: decoding the messages of named methods.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

type Decode = Arc<dyn Fn(&[u8]) -> Option<String> + Send + Sync>;

/// Opt-in recording of message payloads as `rpc.message.payload` events (`Debug` of the decoded
/// message, capped at 256 bytes). Off by default: payloads often carry user data.
///
/// The layers see bytes, so they are told which message types each method carries:
///
/// ```ignore
/// let payloads = Payloads::new().method::<HelloRequest, HelloReply>("/helloworld.Greeter/SayHello");
/// let layer = GrpcServerLayer::new("server2").with_payloads(payloads);
/// ```
#[derive(Clone)]
pub struct Payloads {
    methods: HashMap<String, (Decode, Decode)>,
    max_bytes: usize,
}

impl fmt::Debug for Payloads {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Payloads")
            .field("methods", &self.methods.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Default for Payloads {
    fn default() -> Self {
        Self::new()
    }
}

impl Payloads {
    /// No method recorded yet; messages over 64 KiB are never decoded.
    pub fn new() -> Self {
        Payloads {
            methods: HashMap::new(),
            max_bytes: 64 * 1024,
        }
    }

    /// Records the payloads of the method at `path` (`/package.Service/Method`), decoding its
    /// requests as `Req` and its responses as `Resp`.
    pub fn method<Req, Resp>(mut self, path: &str) -> Self
    where
        Req: prost::Message + Default + fmt::Debug + 'static,
        Resp: prost::Message + Default + fmt::Debug + 'static,
    {
        fn decoder<M: prost::Message + Default + fmt::Debug>() -> Decode {
            Arc::new(|b: &[u8]| {
                M::decode(b)
                    .ok()
                    .map(|m| crate::attrs::capped(format_args!("{m:?}")))
            })
        }
        self.methods
            .insert(path.to_owned(), (decoder::<Req>(), decoder::<Resp>()));
        self
    }

    /// Messages larger than `n` bytes are not decoded (their event is still recorded).
    pub fn with_max_bytes(mut self, n: usize) -> Self {
        self.max_bytes = n;
        self
    }

    pub(crate) fn for_path(&self, path: &str) -> (Option<Tap>, Option<Tap>) {
        match self.methods.get(path) {
            Some((req, resp)) => (
                Some(Tap {
                    decode: Arc::clone(req),
                    max_bytes: self.max_bytes,
                }),
                Some(Tap {
                    decode: Arc::clone(resp),
                    max_bytes: self.max_bytes,
                }),
            ),
            None => (None, None),
        }
    }
}

/// The decoder of one direction of one RPC.
#[derive(Clone)]
pub(crate) struct Tap {
    pub(crate) decode: Decode,
    pub(crate) max_bytes: usize,
}
