//! Closed sets of named values (verdicts, actions, causes, formats): one declaration gives the
//! enum, its names in reports, flags and logs, parsing, and the list of every variant, so a new
//! variant cannot be left out of a count or a rendering.

/// Declares an enum whose variants each have one name: `as_str`, `FromStr` (the exact names),
/// `Display`, serde as that name, `ALL` (every variant, in declaration order) and `index`.
macro_rules! named_enum {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident = $text:literal ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        $vis enum $name {
            $( $(#[$vmeta])* $variant ),+
        }

        #[allow(dead_code)]
        impl $name {
            /// Every variant, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            /// How many variants there are.
            pub const COUNT: usize = Self::ALL.len();

            /// The name used in reports, flags, logs and metrics.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }

            /// The variant named `s` (exactly), without building an error: for hot lookups.
            pub fn from_name(s: &str) -> Option<Self> {
                match s {
                    $($text => Some($name::$variant),)+
                    _ => None,
                }
            }

            /// Position in [`Self::ALL`] (for per-variant counter arrays).
            pub fn index(self) -> usize {
                self as usize
            }
        }

        impl $crate::base::names::Named for $name {
            const ALL: &'static [Self] = $name::ALL;
            fn as_str(self) -> &'static str {
                $name::as_str(self)
            }
        }

        impl std::str::FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                Self::from_name(s).ok_or_else(|| format!("`{s}` is not one of: {}", [$($text),+].join(", ")))
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.pad(self.as_str())
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = <std::borrow::Cow<'de, str> as serde::Deserialize>::deserialize(d)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

pub(crate) use named_enum;

/// What [`named_enum!`] gives every such set, for code generic over them (the CLI's value
/// parsers).
pub trait Named: Sized + Copy + 'static {
    /// Every variant, in declaration order.
    const ALL: &'static [Self];
    /// The variant's name.
    fn as_str(self) -> &'static str;
}

#[cfg(test)]
mod tests {
    named_enum! {
        /// A test set.
        enum Fruit { Apple = "apple", BloodOrange = "blood-orange" }
    }

    #[test]
    fn names_round_trip() {
        assert_eq!(Fruit::ALL, &[Fruit::Apple, Fruit::BloodOrange]);
        assert_eq!(Fruit::COUNT, 2);
        for f in Fruit::ALL {
            assert_eq!(f.as_str().parse::<Fruit>(), Ok(*f));
            let json = serde_json::to_string(f).unwrap();
            assert_eq!(serde_json::from_str::<Fruit>(&json).unwrap(), *f);
        }
        assert_eq!(Fruit::BloodOrange.to_string(), "blood-orange");
        assert!("pear".parse::<Fruit>().unwrap_err().contains("apple, blood-orange"));
        assert_eq!(Fruit::BloodOrange.index(), 1);
    }
}
