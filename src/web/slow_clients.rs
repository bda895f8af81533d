//! Slow clients on kept-alive connections. actix-http's client request timeout
//! (`VEZA_CLIENT_REQUEST_TIMEOUT`) bounds only the *first* request head of a connection:
//! once a response has been sent and the client starts its next request, no timer runs,
//! so a client that sends one good request and then trickles the next head a byte at a
//! time (slowloris) holds the connection forever. This module closes that gap.
//!
//! Each connection gets a [`ConnGuard`] (actix's `on_connect` hook) holding a duplicate
//! of its socket, registered with its worker thread. The [`track`] middleware marks the
//! connection busy from the moment a request head is complete until its response body
//! has been sent (or dropped), so a long download read slowly is never cut. A sweeper per
//! worker closes every connection that has been idle — no request in progress — for
//! longer than the keep-alive period plus the client request timeout: actix itself
//! closes a silent kept-alive connection after the keep-alive period, so only a client
//! that started a request head and never finished it is still open then. It gets the
//! same `408 Request Timeout` as a slow first request, and the socket is shut down.
//!
//! The cost is one extra file descriptor per open connection (the duplicate).

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::io::Write;
use std::pin::Pin;
use std::rc::{Rc, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use actix_web::body::{BodySize, BoxBody, MessageBody};
use actix_web::dev::{Extensions, ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;

/// What a slow client is sent before its connection is shut down (what actix sends a
/// slow first request).
const TIMEOUT_RESPONSE: &[u8] =
    b"HTTP/1.1 408 Request Timeout\r\ncontent-length: 0\r\nconnection: close\r\n\r\n";

/// One open connection, as seen by the sweeper of its worker.
pub struct ConnGuard {
    /// A duplicate of the connection's socket: shutting it down ends the connection.
    socket: Option<std::net::TcpStream>,
    /// Requests whose response has not been fully sent yet.
    busy: Cell<u32>,
    /// When the connection last had no request in progress.
    idle_since: Cell<Instant>,
    cut: Cell<bool>,
}

/// The connection's guard, in the connection data of every request on it.
#[derive(Clone)]
struct ConnHandle(Rc<ConnGuard>);

thread_local! {
    /// The connections of this worker thread.
    static CONNECTIONS: RefCell<Vec<Weak<ConnGuard>>> = const { RefCell::new(Vec::new()) };
    static SWEEPER_STARTED: Cell<bool> = const { Cell::new(false) };
}

/// actix's `on_connect` hook: register the new connection with its worker's sweeper.
/// `allowance` is how long a connection may stay without a request in progress
/// (keep-alive period + client request timeout).
pub fn on_connect(io: &dyn Any, ext: &mut Extensions, allowance: Duration) {
    use std::os::fd::AsFd;
    let Some(tcp) = io.downcast_ref::<actix_web::rt::net::TcpStream>() else {
        return;
    };
    // Without a duplicate (EMFILE…) the connection is only covered by actix's own timers.
    let socket = match tcp.as_fd().try_clone_to_owned() {
        Ok(fd) => Some(std::net::TcpStream::from(fd)),
        Err(e) => {
            log::debug!("slow-client guard unavailable for a connection: {e}");
            None
        }
    };
    let guard = Rc::new(ConnGuard {
        socket,
        busy: Cell::new(0),
        idle_since: Cell::new(Instant::now()),
        cut: Cell::new(false),
    });
    CONNECTIONS.with(|c| c.borrow_mut().push(Rc::downgrade(&guard)));
    ext.insert(ConnHandle(guard));
    if !SWEEPER_STARTED.with(|s| s.replace(true)) {
        actix_web::rt::spawn(sweep(allowance));
    }
}

/// Every `allowance / 4` (at least 100 ms, at most 1 s), cut the connections of this
/// worker that have had no request in progress for longer than `allowance`.
async fn sweep(allowance: Duration) {
    let period = (allowance / 4).clamp(Duration::from_millis(100), Duration::from_secs(1));
    let mut ticker = actix_web::rt::time::interval(period);
    loop {
        ticker.tick().await;
        let now = Instant::now();
        CONNECTIONS.with(|c| {
            c.borrow_mut().retain(|weak| {
                let Some(conn) = weak.upgrade() else {
                    return false;
                };
                if conn.busy.get() == 0
                    && !conn.cut.get()
                    && now.duration_since(conn.idle_since.get()) > allowance
                {
                    conn.cut();
                }
                true
            });
        });
    }
}

impl ConnGuard {
    fn cut(&self) {
        self.cut.set(true);
        if let Some(socket) = &self.socket {
            log::debug!(
                "closing a connection whose next request head did not arrive in time (slow client)"
            );
            // Best effort: the connection is idle, so nothing else is being written.
            let _ = socket.set_nonblocking(true);
            let _ = (&*socket).write(TIMEOUT_RESPONSE);
            let _ = socket.shutdown(std::net::Shutdown::Both);
        }
    }
}

/// Marks the connection busy while a response is outstanding; dropped with the body.
struct Busy(Option<Rc<ConnGuard>>);

impl Busy {
    fn enter(conn: Option<Rc<ConnGuard>>) -> Busy {
        if let Some(c) = &conn {
            c.busy.set(c.busy.get() + 1);
        }
        Busy(conn)
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        if let Some(c) = &self.0 {
            c.busy.set(c.busy.get().saturating_sub(1));
            c.idle_since.set(Instant::now());
        }
    }
}

/// A response body that keeps its connection marked busy until it is dropped.
pub struct Tracked {
    body: BoxBody,
    _busy: Busy,
}

impl MessageBody for Tracked {
    type Error = Box<dyn std::error::Error>;

    fn size(&self) -> BodySize {
        self.body.size()
    }

    fn poll_next(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<bytes::Bytes, Self::Error>>> {
        Pin::new(&mut self.body).poll_next(cx)
    }
}

/// Middleware: the connection is busy from the complete request head until the
/// response body is gone.
pub async fn track(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<Tracked>, actix_web::Error> {
    let conn = req.conn_data::<ConnHandle>().map(|h| h.0.clone());
    let busy = Busy::enter(conn);
    let res = next.call(req).await?;
    Ok(res.map_body(move |_, body| Tracked {
        body: body.boxed(),
        _busy: busy,
    }))
}
