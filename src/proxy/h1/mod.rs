//! The proxy's own HTTP/1.1 server side (`--http1-server own`, the default): what plain-listener
//! requests without a body need, byte for byte, with hyper's server behind it for the rest.

mod answer;
mod forward;
mod head;
mod serve;

pub use serve::Served;
