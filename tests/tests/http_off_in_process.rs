//! The HTTP server layer switched off, called in-process: a handler's panic, in `call` or in its
//! future, is still answered with a 500 (or unwinds, `catch_panics` off); a request whose call
//! path shows a loop is refused with a 508 without calling the handler; the handler's calls carry
//! the request's call path, from `call` and from its future's poll. Its own binary: the switch
//! is process-wide.

mod common;

use std::convert::Infallible;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures_util::FutureExt as _;
use http::{Request, Response};
use http_body_util::{BodyExt as _, Empty, Full};
use tower::{Layer as _, Service as _};
use tracer_runtime::LoopGuard;
use tracer_runtime::http::{HttpClientLayer, HttpServerLayer};

fn request(path: &str, baggage: Option<&'static str>) -> Request<Empty<Bytes>> {
    let mut b = Request::get(path).header(http::header::HOST, "127.0.0.1:8080");
    if let Some(v) = baggage {
        b = b.header("baggage", v);
    }
    b.body(Empty::new()).unwrap()
}

/// The `baggage` of a call made now through the client layer.
fn outgoing_baggage() -> Option<String> {
    let seen = Arc::new(Mutex::new(None));
    let s = Arc::clone(&seen);
    let mut client =
        HttpClientLayer::new().layer(tower::service_fn(move |r: Request<Empty<Bytes>>| {
            *s.lock().unwrap() = r
                .headers()
                .get("baggage")
                .map(|v| v.to_str().unwrap().to_owned());
            std::future::ready(Ok::<_, Infallible>(Response::new(Empty::<Bytes>::new())))
        }));
    let req = Request::get("http://peer/")
        .body(Empty::<Bytes>::new())
        .unwrap();
    let _ = client.call(req).now_or_never();
    seen.lock().unwrap().take()
}

fn serve<S, B>(svc: &mut S, req: Request<Empty<Bytes>>) -> (u16, String)
where
    S: tower::Service<Request<Empty<Bytes>>, Response = Response<B>>,
    S::Error: std::fmt::Debug,
    B: http_body::Body,
    B::Error: std::fmt::Debug,
{
    let resp = svc.call(req).now_or_never().unwrap().unwrap();
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().now_or_never().unwrap().unwrap();
    (status, String::from_utf8(body.to_bytes().to_vec()).unwrap())
}

type Seen = Arc<Mutex<Vec<(&'static str, Option<String>)>>>;

/// Notes the `baggage` of a call it makes in `call` and in its future; `/panic-call` and
/// `/panic-poll` panic there.
fn handler(
    seen: &Seen,
) -> impl tower::Service<
    Request<Empty<Bytes>>,
    Response = Response<Full<Bytes>>,
    Error = Infallible,
    Future = impl Future<Output = Result<Response<Full<Bytes>>, Infallible>>,
> + Clone {
    let seen = Arc::clone(seen);
    tower::service_fn(move |r: Request<Empty<Bytes>>| {
        let path = r.uri().path().to_owned();
        seen.lock().unwrap().push(("call", outgoing_baggage()));
        if path == "/panic-call" {
            panic!("in call");
        }
        let seen = Arc::clone(&seen);
        async move {
            seen.lock().unwrap().push(("poll", outgoing_baggage()));
            if path == "/panic-poll" {
                panic!("in poll");
            }
            Ok(Response::new(Full::new(Bytes::from_static(b"ok"))))
        }
    })
}

#[test]
fn switched_off_panics_loops_and_the_call_path_as_on() {
    common::exporter();
    tracer_runtime::set_all_enabled(false);
    // Outside a request: a first call of the process's service.
    let outside = outgoing_baggage();
    assert_eq!(outside.as_deref(), Some("tracer.path=1:tests"));
    let seen = Seen::default();
    let take = || std::mem::take(&mut *seen.lock().unwrap());
    let mut svc = HttpServerLayer::new("front").layer(handler(&seen));

    // No path: the first hop, received by this service, in `call` and in the poll.
    assert_eq!(serve(&mut svc, request("/ok", None)), (200, "ok".into()));
    let first = Some("tracer.path=1:front".to_owned());
    assert_eq!(take(), [("call", first.clone()), ("poll", first)]);
    // A caller's path, one call further.
    let bag = Some("tracer.path=2:a>b");
    assert_eq!(serve(&mut svc, request("/ok", bag)), (200, "ok".into()));
    let next = Some("tracer.path=3:a>b>front".to_owned());
    assert_eq!(take(), [("call", next.clone()), ("poll", next)]);
    assert_eq!(
        outgoing_baggage(),
        outside,
        "no hop current after the request"
    );

    // Panics: 500s.
    let (status, _) = serve(&mut svc, request("/panic-call", None));
    assert_eq!(status, 500, "a panic in call");
    let (status, _) = serve(&mut svc, request("/panic-poll", None));
    assert_eq!(status, 500, "a panic in the future");
    assert_eq!(take().len(), 3);
    assert_eq!(outgoing_baggage(), outside, "no hop current after a panic");

    // A loop: 508, the handler not called.
    let mut strict = HttpServerLayer::new("front")
        .with_loop_guard(LoopGuard::new().max_repeats(0))
        .layer(handler(&seen));
    let (status, body) = serve(&mut strict, request("/ok", Some("tracer.path=2:front>x")));
    assert_eq!(status, 508);
    assert!(body.contains("loop"), "{body}");
    assert!(take().is_empty(), "the handler was not called");

    // `catch_panics` off: the panics unwind, from `call` and from the poll.
    let mut unwinding = HttpServerLayer::new("front")
        .with_catch_panics(false)
        .layer(handler(&seen));
    let caught = catch_unwind(AssertUnwindSafe(|| {
        drop(unwinding.call(request("/panic-call", None)));
    }));
    assert!(caught.is_err(), "unwinds from call");
    let fut = unwinding.call(request("/panic-poll", None));
    let caught = catch_unwind(AssertUnwindSafe(|| fut.now_or_never()));
    assert!(caught.is_err(), "unwinds from the poll");
    assert_eq!(
        outgoing_baggage(),
        outside,
        "no hop current after unwinding"
    );
    tracer_runtime::set_all_enabled(true);
}
