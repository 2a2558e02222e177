//! Header fields as the parsers hand them out, and the lookups a proxy needs on
//! them: case-insensitive get, the Connection options, and the hop-by-hop set a
//! proxy must not forward (RFC 9110 7.6.1). Names keep the case they were
//! received in; comparisons ignore ASCII case (RFC 9110 5.1).

use super::syntax::list_items;

/// One field line. `name` is a token as received; `value` has surrounding
/// whitespace removed and may hold obs-text, so it stays bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    pub name: HeaderName,
    pub value: HeaderValue,
}

/// A field name. Names of up to 24 bytes (nearly all of them) are held inline: parsing
/// a head allocates once for its list of fields, not twice per field.
pub type HeaderName = compact_str::CompactString;

/// A field value, held inline up to 32 bytes (a Host, a Date, a Content-Type), on the
/// heap beyond.
pub type HeaderValue = smallvec::SmallVec<[u8; 32]>;

impl Header {
    /// A field from a name and value of any of the usual owned or borrowed forms.
    pub fn new(name: impl Into<HeaderName>, value: impl AsRef<[u8]>) -> Self {
        Header {
            name: name.into(),
            value: HeaderValue::from_slice(value.as_ref()),
        }
    }
}

/// Fields that describe one connection and are never forwarded as-is
/// (RFC 9110 7.6.1, plus the legacy Keep-Alive and Proxy-Connection and the
/// hop-by-hop proxy authentication fields, RFC 9110 11.7).
pub fn is_hop_by_hop(name: &str) -> bool {
    const HOP: [&str; 9] = [
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "proxy-authenticate",
        "proxy-authorization",
    ];
    HOP.iter().any(|h| h.eq_ignore_ascii_case(name))
}

/// The lowercased options of every Connection field, in order (RFC 9110 7.6.1).
/// A proxy removes the fields these name before forwarding.
pub fn connection_tokens(headers: &[Header]) -> Vec<String> {
    headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("connection"))
        .flat_map(|h| list_items(&h.value))
        .map(|t| String::from_utf8_lossy(t).to_ascii_lowercase())
        .collect()
}

/// The value of the first field called `name`, ignoring ASCII case.
pub fn get<'a>(headers: &'a [Header], name: &str) -> Option<&'a [u8]> {
    headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case(name))
        .map(|h| h.value.as_slice())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(name: &str, value: &str) -> Header {
        Header::new(name, value)
    }

    #[test]
    fn hop_by_hop() {
        for name in [
            "Connection",
            "keep-alive",
            "PROXY-CONNECTION",
            "TE",
            "Trailer",
            "Transfer-Encoding",
            "Upgrade",
            "Proxy-Authenticate",
            "proxy-authorization",
        ] {
            assert!(is_hop_by_hop(name), "{name}");
        }
        for name in ["Host", "Content-Length", "Trailers", "T", "authorization"] {
            assert!(!is_hop_by_hop(name), "{name}");
        }
    }

    #[test]
    fn tokens_of_all_connection_fields() {
        let headers = [
            h("Connection", "Keep-Alive, X-Foo"),
            h("Host", "a"),
            h("connection", " ,close ,"),
        ];
        assert_eq!(
            connection_tokens(&headers),
            vec!["keep-alive", "x-foo", "close"]
        );
        assert!(connection_tokens(&[h("Host", "a")]).is_empty());
    }

    #[test]
    fn get_first_case_insensitive() {
        let headers = [h("X-A", "1"), h("x-a", "2")];
        assert_eq!(get(&headers, "x-A"), Some(&b"1"[..]));
        assert_eq!(get(&headers, "x-b"), None);
    }
}
