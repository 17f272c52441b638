//! Length-prefixed frames for request-response, with the size checked before the body is read.
//!
//! The codec moves raw bytes; decoding (and the polite refusal of unknown versions) happens in the event
//! loop, so that a frame that does not decode still gets an answer. A request frame over its limit is
//! refused before its body is read: the codec hands the event loop a [`Frame::Oversized`] marker, which is
//! answered with a `TooLarge` error and reported (libp2p would otherwise drop the failure silently). A
//! response over its limit fails the request on the requesting side.

use std::io;

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use libp2p::StreamProtocol;

/// An undecoded message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Frame {
    /// The bytes of a frame within its limit.
    Data(Vec<u8>),
    /// An inbound request whose length prefix exceeded the limit; its body was not read.
    Oversized { len: usize, max: usize },
}

fn too_large(len: usize, max: usize) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("frame of {len} bytes exceeds the limit of {max} bytes"),
    )
}

/// Request-response codec with explicit limits.
#[derive(Clone, Debug)]
pub(crate) struct FrameCodec {
    pub max_request: usize,
    pub max_response: usize,
}

async fn read_len<T: AsyncRead + Unpin>(io: &mut T) -> io::Result<usize> {
    let mut len = [0u8; 4];
    io.read_exact(&mut len).await?;
    Ok(u32::from_be_bytes(len) as usize)
}

async fn read_body<T: AsyncRead + Unpin>(io: &mut T, len: usize) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; len];
    io.read_exact(&mut buf).await?;
    Ok(buf)
}

/// Reads one frame, refusing (before reading the body) a length over `max`.
pub(crate) async fn read_frame<T: AsyncRead + Unpin>(
    io: &mut T,
    max: usize,
) -> io::Result<Vec<u8>> {
    let len = read_len(io).await?;
    if len > max {
        return Err(too_large(len, max));
    }
    read_body(io, len).await
}

pub(crate) async fn write_frame<T: AsyncWrite + Unpin>(io: &mut T, data: &[u8]) -> io::Result<()> {
    let len = u32::try_from(data.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "frame over 4 GiB"))?;
    io.write_all(&len.to_be_bytes()).await?;
    io.write_all(data).await?;
    io.flush().await
}

impl libp2p::request_response::Codec for FrameCodec {
    type Protocol = StreamProtocol;
    type Request = Frame;
    type Response = Frame;

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Frame>
    where
        T: AsyncRead + Unpin + Send,
    {
        let len = read_len(io).await?;
        if len > self.max_request {
            return Ok(Frame::Oversized {
                len,
                max: self.max_request,
            });
        }
        read_body(io, len).await.map(Frame::Data)
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Frame>
    where
        T: AsyncRead + Unpin + Send,
    {
        read_frame(io, self.max_response).await.map(Frame::Data)
    }

    async fn write_request<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        req: Frame,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_frame(io, frame_bytes(&req)?).await?;
        io.close().await
    }

    async fn write_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        res: Frame,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_frame(io, frame_bytes(&res)?).await?;
        io.close().await
    }
}

fn frame_bytes(frame: &Frame) -> io::Result<&[u8]> {
    match frame {
        Frame::Data(d) => Ok(d),
        Frame::Oversized { .. } => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "an oversized marker cannot be written",
        )),
    }
}
