//! Listener sockets: one per worker and address, with `SO_REUSEPORT`, so the kernel spreads
//! connections over the workers.

use std::net::SocketAddr;

use socket2::{Domain, Protocol, Socket, Type};

use crate::base::error::ConfigError;

/// Binds `addr` once per worker with `SO_REUSEPORT`; port 0 is resolved by the first socket and
/// reused by the others. Returns the sockets and the bound address.
pub fn bind_reuseport(
    addr: SocketAddr,
    workers: usize,
) -> Result<(Vec<std::net::TcpListener>, SocketAddr), ConfigError> {
    let err = |source| ConfigError::Bind { addr, source };
    let mut sockets = Vec::with_capacity(workers);
    let mut bound = addr;
    for _ in 0..workers {
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP)).map_err(err)?;
        socket.set_reuse_address(true).map_err(err)?;
        socket.set_reuse_port(true).map_err(err)?;
        if addr.is_ipv6() {
            socket.set_only_v6(true).map_err(err)?;
        }
        socket.set_nonblocking(true).map_err(err)?;
        socket.bind(&bound.into()).map_err(err)?;
        socket.listen(4096).map_err(err)?;
        let listener: std::net::TcpListener = socket.into();
        bound = listener.local_addr().map_err(err)?;
        sockets.push(listener);
    }
    Ok((sockets, bound))
}
