//! Package URLs (`pkg:npm/%40babel/runtime@7.21.0?file=x.tgz`), which ProGet's
//! packages API accepts in place of `group`, `name`, `version` and `qualifier`.

use percent_encoding::percent_decode_str;

use super::{parse_qualifier, Identifier};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Purl {
    /// The purl type (`npm`, `nuget`, `generic`…), lower-case.
    pub purl_type: String,
    /// The namespace: npm scope, maven groupId, or a docker repository's path.
    pub group: Option<Identifier>,
    pub name: Identifier,
    pub version: Option<Identifier>,
    /// The qualifiers as one string, as file records store them.
    pub qualifier: Option<String>,
}

impl Purl {
    /// Err is the broken rule, phrased to follow a field name.
    pub fn parse(text: &str) -> Result<Purl, &'static str> {
        const SHAPE: &str = "must be a package URL such as pkg:npm/%40babel/runtime@7.21.0";
        let rest = text
            .trim()
            .strip_prefix("pkg:")
            .ok_or(SHAPE)?
            .trim_start_matches('/');
        // The subpath (#…) names a file inside a package: not a filter here.
        let rest = rest.split_once('#').map_or(rest, |(before, _)| before);
        let (rest, qualifier) = match rest.split_once('?') {
            Some((rest, qualifier)) => (rest, Some(qualifier)),
            None => (rest, None),
        };
        let (purl_type, path) = rest.split_once('/').ok_or(SHAPE)?;
        if purl_type.is_empty()
            || !purl_type
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || ".+-".contains(c))
        {
            return Err(SHAPE);
        }
        // The version follows the last '@' after the last '/', so that an
        // unencoded npm scope (`@babel/runtime`) stays part of the path.
        let last_slash = path.rfind('/').map_or(0, |i| i + 1);
        let (path, version) = match path[last_slash..].rfind('@') {
            Some(at) => (&path[..last_slash + at], Some(&path[last_slash + at + 1..])),
            None => (path, None),
        };
        let decode = |part: &str| -> Result<String, &'static str> {
            percent_decode_str(part)
                .decode_utf8()
                .map(|text| text.into_owned())
                .map_err(|_| "must be percent-encoded UTF-8")
        };
        let segments: Vec<String> = path
            .split('/')
            .filter(|segment| !segment.is_empty())
            .map(decode)
            .collect::<Result<_, _>>()?;
        let (name, namespace) = segments.split_last().ok_or(SHAPE)?;
        let group = (!namespace.is_empty())
            .then(|| Identifier::parse(&namespace.join("/")))
            .transpose()?;
        let version = version
            .map(|v| Identifier::parse(&decode(v)?))
            .transpose()?;
        let qualifier = qualifier
            .map(|q| parse_qualifier(&decode(q)?))
            .transpose()?
            .filter(|q| !q.is_empty());
        Ok(Purl {
            purl_type: purl_type.to_ascii_lowercase(),
            group,
            name: Identifier::parse(name)?,
            version,
            qualifier,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn purls_split_into_their_parts() {
        let purl = Purl::parse("pkg:npm/%40babel/runtime@7.21.0?file=runtime-7.21.0.tgz").unwrap();
        assert_eq!(purl.purl_type, "npm");
        assert_eq!(purl.group.unwrap().as_str(), "@babel");
        assert_eq!(purl.name.as_str(), "runtime");
        assert_eq!(purl.version.unwrap().as_str(), "7.21.0");
        assert_eq!(purl.qualifier.as_deref(), Some("file=runtime-7.21.0.tgz"));

        let unencoded = Purl::parse("pkg:npm/@babel/runtime@7.21.0").unwrap();
        assert_eq!(unencoded.group.unwrap().as_str(), "@babel");
        let bare = Purl::parse("pkg:NuGet/Newtonsoft.Json").unwrap();
        assert_eq!((bare.purl_type.as_str(), bare.version), ("nuget", None));
        let docker = Purl::parse("pkg:docker/bitnami/dotnet@8.0").unwrap();
        assert_eq!(docker.group.unwrap().as_str(), "bitnami");
    }

    #[test]
    fn malformed_purls_are_refused() {
        for bad in [
            "",
            "npm/x@1",
            "pkg:",
            "pkg:npm",
            "pkg:npm/",
            "pkg:npm/x@",
            "pkg:n m/x",
            "pkg:npm/%ff@1",
        ] {
            assert!(Purl::parse(bad).is_err(), "{bad}");
        }
    }
}
