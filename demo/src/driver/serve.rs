//! `demo serve`: the servers until Ctrl-C.

use std::collections::HashSet;
use std::time::Duration;

use super::sink::Sink;
use super::supervisor::{Servers, database_hints};
use crate::config::{Addrs, Error};
use crate::receiver;
use crate::scenario::Scenario;
use crate::waterfall::{self, Style};

/// `demo serve`: the three servers until Ctrl-C; with the embedded receiver, each trace drawn
/// as it completes.
pub(crate) async fn serve(addrs: &Addrs) -> Result<(), Error> {
    let style = Style::detect();
    let sink = Sink::open().await?;
    match &sink {
        Sink::Embedded { .. } => println!("{}", style.dim(&sink.describe())),
        Sink::External(e) => println!(
            "{}",
            style.dim(&format!("spans: to {e} (OTEL_EXPORTER_OTLP_ENDPOINT)"))
        ),
    }
    for h in database_hints(addrs) {
        println!("{}", style.red(&format!("note: {h}")));
    }
    let mut servers = Servers::start(addrs, &sink).await?;
    println!(
        "server1 HTTP http://{}, server2 HTTP http://{} and gRPC {}, server3 gRPC {}: running \
         until Ctrl-C",
        addrs.server1_http, addrs.server2_http, addrs.server2_grpc, addrs.server3_grpc
    );
    println!(
        "try:  curl -i http://{}/scenario/normal",
        addrs.server1_http
    );
    println!("      demo scenario <name>   (one of: {})", names());
    println!(
        "metrics: http://{}/metrics, http://{}/metrics, http://{}/metrics",
        addrs.server1_metrics, addrs.server2_metrics, addrs.server3_metrics
    );
    println!(
        "switch server3's tracing off (and on):  curl -X PUT --data off http://{}/tracer/server3",
        addrs.server3_metrics
    );

    let mut shown = HashSet::new();
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    let stop = crate::shutdown::requested(false);
    tokio::pin!(stop);
    let outcome = loop {
        tokio::select! {
            () = &mut stop => break Ok(()),
            _ = tick.tick() => {}
        }
        if let Some(name) = servers.exited() {
            break Err(format!("{name} stopped:\n{}", servers.log_text(name)));
        }
        if let Sink::Embedded { store, .. } = &sink {
            for id in store.trace_ids() {
                if shown.contains(&id) {
                    continue;
                }
                let spans = store.trace(&id);
                if receiver::is_complete(&spans) {
                    if let Some(root) = spans.iter().find(|s| s.parent_id.is_empty()) {
                        println!("\ntrace_id={id} ({} {})", root.service, root.name);
                    }
                    print!("{}", waterfall::render(&spans, style));
                    servers.print_log_lines(&id, style);
                    shown.insert(id);
                }
            }
        }
    };
    println!("\nstopping the servers ...");
    servers.stop().await;
    outcome.map_err(Into::into)
}

fn names() -> String {
    Scenario::ALL.map(Scenario::name).join(", ")
}
