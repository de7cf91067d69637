//! Who is a superuser (reference §6.2).

use super::database::{euid, group_gid, SystemUser};

/// Groups whose members are superusers when no `--supergroup` is given (those that exist).
pub const DEFAULT_SUPERGROUPS: [&str; 3] = ["sudo", "wheel", "admin"];

/// Who is a superuser: root, the account running the server, the users named by
/// `--superuser` and the members of the `--supergroup` groups.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SuperuserPolicy {
    users: Vec<String>,
    groups: Vec<String>,
}

impl SuperuserPolicy {
    /// A policy from the `--superuser` and `--supergroup` values. With no groups, the
    /// defaults [`DEFAULT_SUPERGROUPS`] that exist on this system are used.
    pub fn new(users: Vec<String>, groups: Vec<String>) -> Self {
        let groups = if groups.is_empty() {
            DEFAULT_SUPERGROUPS
                .iter()
                .filter(|g| matches!(group_gid(g), Ok(Some(_))))
                .map(|g| (*g).to_owned())
                .collect()
        } else {
            groups
        };
        Self { users, groups }
    }

    /// The users named as superusers.
    pub fn users(&self) -> &[String] {
        &self.users
    }

    /// The groups whose members are superusers (after applying the defaults).
    pub fn groups(&self) -> &[String] {
        &self.groups
    }

    /// Whether `u` is a superuser. Groups are resolved now, so groups created after start-up
    /// count; a group that cannot be resolved counts for nobody.
    pub fn is_superuser(&self, u: &SystemUser) -> bool {
        if u.uid == 0 || u.uid == euid() || self.users.contains(&u.name) {
            return true;
        }
        self.groups.iter().any(|g| match group_gid(g) {
            Ok(Some(gid)) => u.gid == gid || u.groups.contains(&gid),
            _ => false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{require_root, TestGroup, TestUser};
    use super::*;
    use crate::users::lookup;
    use std::path::PathBuf;

    fn fabricated(uid: u32, gid: u32, groups: Vec<u32>) -> SystemUser {
        SystemUser {
            name: format!("fab{uid}"),
            uid,
            gid,
            home: PathBuf::from("/"),
            groups,
        }
    }

    #[test]
    fn superuser_policy_rules() {
        let uid = if euid() == 4242 { 4243 } else { 4242 };
        let plain = fabricated(uid, 4242, vec![4242]);
        let defaults = SuperuserPolicy::new(vec![], vec![]);
        assert!(defaults
            .groups()
            .iter()
            .all(|g| DEFAULT_SUPERGROUPS.contains(&g.as_str())));
        assert!(!defaults.is_superuser(&plain));
        assert!(defaults.is_superuser(&fabricated(0, 4242, vec![])));
        assert!(defaults.is_superuser(&fabricated(euid(), 4242, vec![])));
        let by_name = SuperuserPolicy::new(vec![plain.name.clone()], vec!["nogroup".into()]);
        assert!(by_name.is_superuser(&plain));
        assert_eq!(by_name.groups(), ["nogroup"]);
        // Group 0 ("root") as primary or supplementary group.
        let by_group = SuperuserPolicy::new(vec![], vec!["root".into()]);
        assert!(by_group.is_superuser(&fabricated(uid, 0, vec![])));
        assert!(by_group.is_superuser(&fabricated(uid, 4242, vec![4242, 0])));
        assert!(!by_group.is_superuser(&plain));
        let unknown = SuperuserPolicy::new(vec![], vec!["jstest_no_such_group".into()]);
        assert!(!unknown.is_superuser(&plain));
    }

    #[test]
    #[ignore = "needs root: system users and groups"]
    fn superuser_policy_with_real_users_and_groups() {
        require_root("system users and groups");
        let tu = TestUser::create(Some("pw-for-policy")).unwrap();
        let group = TestGroup::create().unwrap();
        let u = lookup(tu.name()).unwrap().unwrap();
        assert_eq!((u.uid, u.gid), (tu.uid(), tu.gid()));
        let policy = SuperuserPolicy::new(vec![], vec![group.name().to_owned()]);
        assert!(!policy.is_superuser(&u));
        assert!(!SuperuserPolicy::new(vec![], vec![]).is_superuser(&u));
        let named = SuperuserPolicy::new(vec![tu.name().to_owned()], vec![]);
        assert!(named.is_superuser(&u));
        group.add(&tu).unwrap();
        let u = lookup(tu.name()).unwrap().unwrap();
        assert!(policy.is_superuser(&u));
        assert!(policy.is_superuser(&lookup("root").unwrap().unwrap()));
    }
}
