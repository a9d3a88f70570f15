//! Connections below the HTTP layer: the observed I/O wrapper, a client connection's state with
//! its watchdog and alarm, listener sockets, and the process's shutdown state and trackers.

pub mod alarm;
pub mod bind;
pub mod conn;
pub mod io;
pub mod priority;
pub mod shutdown;
pub mod spare;
