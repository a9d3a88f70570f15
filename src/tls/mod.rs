//! TLS: termination with certificates chosen by SNI ([`certs`], [`accept`]), the ClientHello
//! reader that passthrough listeners use ([`clienthello`]), the leaf-certificate reader ([`der`])
//! and the dev certificate generator ([`generate`]). TLS toward blue lives in `upstream::tls`;
//! the passthrough listener in `listen::passthrough`.

pub mod accept;
pub mod certs;
pub mod clienthello;
pub mod der;
pub mod generate;
pub mod provider;
pub mod roots;
