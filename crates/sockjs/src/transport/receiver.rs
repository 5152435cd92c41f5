//! The response body of every receiving HTTP transport: it waits on the session for frames,
//! wraps each in the transport's framing, and ends after one frame (polling), after the close
//! frame, or past `response_limit` (streaming). Dropped before it ended (the client went away
//! mid-response), it closes the session with 1002 `Connection interrupted` and detaches, so a
//! session is never left "attached" to a dead request.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use hyper::body::{Body, Frame, SizeHint};

use crate::endpoint::Cell;
use crate::json;
use crate::session::{self, FrameKind};

/// How frames are written on the wire.
#[derive(Debug, Clone)]
pub(crate) enum Wrap {
    /// `<frame>\n` (xhr, xhr_streaming).
    Newline,
    /// `data: <frame>\r\n\r\n` (eventsource).
    EventSource,
    /// `<script>\np("<frame as JSON string>");\n</script>\r\n` (htmlfile).
    HtmlFile,
    /// `/**/<callback>("<frame as JSON string>");\r\n` (jsonp).
    Jsonp(Box<str>),
}

impl Wrap {
    /// One frame in this transport's framing, in one buffer (one chunk on the wire).
    pub(crate) fn wrap(&self, frame: &[u8]) -> Bytes {
        // Frames are built by the session from UTF-8 only.
        let text = std::str::from_utf8(frame).unwrap_or_default();
        match self {
            Wrap::Newline => {
                let mut b = BytesMut::with_capacity(frame.len() + 1);
                b.extend_from_slice(frame);
                b.extend_from_slice(b"\n");
                b.freeze()
            }
            Wrap::EventSource => {
                let mut b = BytesMut::with_capacity(frame.len() + 10);
                b.extend_from_slice(b"data: ");
                b.extend_from_slice(frame);
                b.extend_from_slice(b"\r\n\r\n");
                b.freeze()
            }
            Wrap::HtmlFile => {
                let mut b = BytesMut::with_capacity(frame.len() + frame.len() / 8 + 32);
                b.extend_from_slice(b"<script>\np(");
                json::encode_str_into(text, &mut b);
                b.extend_from_slice(b");\n</script>\r\n");
                b.freeze()
            }
            Wrap::Jsonp(cb) => {
                let mut b = BytesMut::with_capacity(frame.len() + frame.len() / 8 + cb.len() + 12);
                b.extend_from_slice(b"/**/");
                b.extend_from_slice(cb.as_bytes());
                b.extend_from_slice(b"(");
                json::encode_str_into(text, &mut b);
                b.extend_from_slice(b");\r\n");
                b.freeze()
            }
        }
    }
}

/// The body of a receiving request attached to a session.
pub(crate) struct ReceiverBody {
    /// `None` once the response ended (and the receiver detached).
    cell: Option<Arc<Cell>>,
    prelude: Option<Bytes>,
    wrap: Wrap,
    /// Polling: end after the first frame.
    polling: bool,
    /// Streaming: end once this many frame bytes were written.
    limit: usize,
    written: usize,
}

impl ReceiverBody {
    pub(crate) fn polling(cell: Arc<Cell>, wrap: Wrap) -> ReceiverBody {
        ReceiverBody {
            cell: Some(cell),
            prelude: None,
            wrap,
            polling: true,
            limit: usize::MAX,
            written: 0,
        }
    }

    pub(crate) fn streaming(
        cell: Arc<Cell>,
        wrap: Wrap,
        prelude: Bytes,
        limit: usize,
    ) -> ReceiverBody {
        ReceiverBody {
            cell: Some(cell),
            prelude: Some(prelude),
            wrap,
            polling: false,
            limit,
            written: 0,
        }
    }

    fn finish(&mut self) {
        if let Some(cell) = self.cell.take() {
            cell.detach();
        }
    }
}

impl Body for ReceiverBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = &mut *self;
        if let Some(p) = this.prelude.take() {
            return Poll::Ready(Some(Ok(Frame::data(p))));
        }
        let Some(cell) = &this.cell else {
            return Poll::Ready(None);
        };
        match cell.poll_frame(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(None) => {
                this.finish();
                Poll::Ready(None)
            }
            Poll::Ready(Some(f)) => {
                let data = this.wrap.wrap(&f.bytes);
                this.written += data.len();
                if this.polling || f.kind == FrameKind::Close || this.written >= this.limit {
                    this.finish();
                }
                Poll::Ready(Some(Ok(Frame::data(data))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.cell.is_none() && self.prelude.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

impl Drop for ReceiverBody {
    fn drop(&mut self) {
        if let Some(cell) = self.cell.take() {
            cell.abort();
        }
    }
}

/// The one-frame answer to a receiver that found another receiver attached.
pub(crate) fn another_connection(wrap: &Wrap) -> Bytes {
    wrap.wrap(session::ANOTHER_CONNECTION_STILL_OPEN.as_bytes())
}
