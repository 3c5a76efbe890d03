//! A libpq multi-host URL (`postgres://user:pw@h1:5432,h2:5433,h3:5434/db`)
//! split into one connection string per node: the first host is taken as the
//! primary, the others as replicas (the monitor finds the real roles).

/// The per-node URLs of a multi-host URL, in order; `None` when `url` is not
/// a `postgres://` or `postgresql://` URL.
pub(crate) fn split_hosts(url: &str) -> Option<Vec<String>> {
    let (scheme, rest) = url.split_once("://")?;
    if scheme != "postgres" && scheme != "postgresql" {
        return None;
    }
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let (userinfo, hosts) = match authority.rsplit_once('@') {
        Some((userinfo, hosts)) => (Some(userinfo), hosts),
        None => (None, authority),
    };
    let urls = hosts
        .split(',')
        .map(|host| match userinfo {
            Some(userinfo) => format!("{scheme}://{userinfo}@{host}{tail}"),
            None => format!("{scheme}://{host}{tail}"),
        })
        .collect();
    Some(urls)
}

#[cfg(test)]
mod tests {
    use super::split_hosts;

    #[test]
    fn each_host_gets_the_login_database_and_parameters() {
        let urls =
            split_hosts("postgres://app:s3cret@10.0.0.1:5432,10.0.0.2:5433/shop?sslmode=disable");
        assert_eq!(
            urls,
            Some(vec![
                "postgres://app:s3cret@10.0.0.1:5432/shop?sslmode=disable".to_owned(),
                "postgres://app:s3cret@10.0.0.2:5433/shop?sslmode=disable".to_owned(),
            ])
        );
    }

    #[test]
    fn a_single_host_url_is_one_node() {
        assert_eq!(
            split_hosts("postgresql://localhost"),
            Some(vec!["postgresql://localhost".to_owned()])
        );
    }

    #[test]
    fn key_value_strings_are_not_urls() {
        assert_eq!(split_hosts("host=a,b port=5432"), None);
    }
}
