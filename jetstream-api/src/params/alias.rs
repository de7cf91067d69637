//! The two parameters with a second name: `auth`'s `userName` (also `username`) and
//! `sleep`'s `milliseconds` (also `ms`).
//!
//! serde's `alias` would put the second names in the field list that
//! [`crate::Meta::parameters`] reads, so these two `Deserialize`s are written out: they give
//! serde the primary names only and take either. Giving both names is an error, as giving one
//! twice is.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, Visitor};

use super::{flex, Auth, Secret, Sleep};

/// Reads the members of a map: each key is one of `fields` or one of `aliases` (with the
/// index of its field); `take(field, map)` reads the value of one field.
fn read_map<'de, A, F>(
    mut map: A,
    fields: &'static [&'static str],
    aliases: &[(&str, usize)],
    mut take: F,
) -> Result<(), A::Error>
where
    A: MapAccess<'de>,
    F: FnMut(usize, &mut A) -> Result<(), A::Error>,
{
    let mut seen = vec![false; fields.len()];
    while let Some(key) = map.next_key::<String>()? {
        let index = fields
            .iter()
            .position(|f| *f == key)
            .or_else(|| aliases.iter().find(|(a, _)| *a == key).map(|(_, i)| *i));
        let Some(i) = index else {
            map.next_value::<IgnoredAny>()?;
            return Err(de::Error::unknown_field(&key, fields));
        };
        if std::mem::replace(&mut seen[i], true) {
            return Err(de::Error::duplicate_field(fields[i]));
        }
        take(i, &mut map)?;
    }
    Ok(())
}

impl<'de> Deserialize<'de> for Auth {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        const FIELDS: &[&str] = &["userName", "password"];
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Auth;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("the parameters of auth")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Auth, A::Error> {
                let (mut user, mut password) = (None, None);
                read_map(map, FIELDS, &[("username", 0)], |i, m| {
                    if i == 0 {
                        user = Some(m.next_value::<String>()?);
                    } else {
                        password = Some(m.next_value::<Secret>()?);
                    }
                    Ok(())
                })?;
                Ok(Auth {
                    user_name: user.ok_or_else(|| de::Error::missing_field(FIELDS[0]))?,
                    password: password.ok_or_else(|| de::Error::missing_field(FIELDS[1]))?,
                })
            }
        }
        d.deserialize_struct("Auth", FIELDS, V)
    }
}

impl<'de> Deserialize<'de> for Sleep {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        const FIELDS: &[&str] = &["milliseconds"];
        struct V;
        struct Ms(Option<u64>);
        impl<'de> Deserialize<'de> for Ms {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                flex::opt_int(d).map(Ms)
            }
        }
        impl<'de> Visitor<'de> for V {
            type Value = Sleep;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("the parameters of sleep")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Sleep, A::Error> {
                let mut ms = None;
                read_map(map, FIELDS, &[("ms", 0)], |_, m| {
                    ms = m.next_value::<Ms>()?.0;
                    Ok(())
                })?;
                Ok(Sleep { milliseconds: ms })
            }
        }
        d.deserialize_struct("Sleep", FIELDS, V)
    }
}
