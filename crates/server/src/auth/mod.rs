//! Authentication and authorization from the configuration: `[[users]]` (argon2id hashes or
//! plain passcodes), `[auth.jwt]` bearer tokens, `[[acl]]` rules, and the per-address back-off
//! after failed logins.

pub(crate) mod token;
