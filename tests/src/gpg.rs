//! Throwaway OpenPGP keys for tests, made by the host's GnuPG (`gpg`, batch mode, a private
//! GNUPGHOME, no passphrase): to sign with, and to hand to Spack and `spackitor verify --trust`.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Whether the host has `gpg`.
pub fn available() -> bool {
    Command::new("gpg")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Stop the gpg-agent GnuPG started for `home` (gpg starts one per home and leaves it running).
pub fn stop_agent(home: &Path) {
    let _ = Command::new("gpgconf")
        .arg("--homedir")
        .arg(home)
        .args(["--kill", "all"])
        .output();
}

/// A key's files, as `gpg --armor --export[-secret-keys]` writes them.
#[derive(Debug, Clone)]
pub struct Key {
    /// The primary key's fingerprint, upper-case hex.
    pub fingerprint: String,
    /// The fingerprint of the subkey that signs (what its signatures name as issuer).
    pub signing_subkey: String,
    pub public: PathBuf,
    pub secret: PathBuf,
}

/// A private GNUPGHOME; its agent is stopped when dropped.
#[derive(Debug)]
pub struct Keyring {
    home: tempfile::TempDir,
}

impl Default for Keyring {
    fn default() -> Self {
        Self::new()
    }
}

impl Keyring {
    pub fn new() -> Keyring {
        let home = tempfile::Builder::new().prefix("gpg").tempdir().unwrap();
        std::fs::set_permissions(
            home.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o700),
        )
        .unwrap();
        Keyring { home }
    }

    fn gpg(&self, args: &[&str]) -> Vec<u8> {
        let out = Command::new("gpg")
            .arg("--homedir")
            .arg(self.home.path())
            .args(["--batch", "--pinentry-mode", "loopback", "--passphrase", ""])
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("gpg {args:?}: {e}"));
        assert!(
            out.status.success(),
            "gpg {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    /// A new key `name` (RSA primary key that certifies, an Ed25519 subkey that signs, as
    /// GnuPG's users often have them), its files written into `dir`.
    pub fn create(&self, name: &str, dir: &Path) -> Key {
        let uid = format!("{name} (test key) <{name}@example.invalid>");
        self.gpg(&["--quick-gen-key", &uid, "rsa2048", "cert", "never"]);
        let colons = String::from_utf8(self.gpg(&["--with-colons", "--list-keys", &uid])).unwrap();
        let fingerprint = colons
            .lines()
            .find(|l| l.starts_with("fpr:"))
            .and_then(|l| l.split(':').nth(9))
            .unwrap()
            .to_string();
        self.gpg(&["--quick-add-key", &fingerprint, "ed25519", "sign", "never"]);
        let colons = String::from_utf8(self.gpg(&["--with-colons", "--list-keys", &uid])).unwrap();
        let signing_subkey = colons
            .lines()
            .filter(|l| l.starts_with("fpr:"))
            .nth(1)
            .and_then(|l| l.split(':').nth(9))
            .unwrap()
            .to_string();
        std::fs::create_dir_all(dir).unwrap();
        let public = dir.join(format!("{name}.pub.asc"));
        let secret = dir.join(format!("{name}.secret.asc"));
        std::fs::write(&public, self.gpg(&["--armor", "--export", &fingerprint])).unwrap();
        std::fs::write(
            &secret,
            self.gpg(&["--armor", "--export-secret-keys", &fingerprint]),
        )
        .unwrap();
        Key {
            fingerprint,
            signing_subkey,
            public,
            secret,
        }
    }

    /// Write `key`'s public key file again, as it is now in this keyring (with the
    /// certifications and revocations added since).
    pub fn export(&self, key: &Key) {
        let public = self.gpg(&["--armor", "--export", &key.fingerprint]);
        std::fs::write(&key.public, public).unwrap();
    }

    /// `signer` certifies `signee`'s user ID (`gpg --quick-sign-key`), a third-party
    /// certification that `gpg --export` carries with `signee`; its public key file is
    /// written again.
    pub fn certify(&self, signer: &Key, signee: &Key) {
        self.gpg(&[
            "--yes",
            "--default-key",
            &signer.fingerprint,
            "--quick-sign-key",
            &signee.fingerprint,
        ]);
        self.export(signee);
    }

    /// Revoke `key` with the revocation certificate GnuPG wrote when creating it
    /// (`openpgp-revocs.d/<FPR>.rev`, its armor line escaped with a `:` against accidental
    /// import); its public key file is written again.
    pub fn revoke(&self, key: &Key) {
        let rev = self
            .home
            .path()
            .join(format!("openpgp-revocs.d/{}.rev", key.fingerprint));
        let cert = std::fs::read_to_string(rev)
            .unwrap()
            .replace(":-----BEGIN", "-----BEGIN");
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("rev.asc");
        std::fs::write(&file, cert).unwrap();
        self.gpg(&["--import", file.to_str().unwrap()]);
        self.export(key);
    }

    /// `text` clear-signed by `key` of this keyring, as Spack signs (`gpg --clearsign`).
    pub fn clearsign(&self, key: &Key, text: &[u8]) -> Vec<u8> {
        let dir = tempfile::tempdir().unwrap();
        let (input, output) = (dir.path().join("in"), dir.path().join("out"));
        std::fs::write(&input, text).unwrap();
        self.gpg(&[
            "--clearsign",
            "--armor",
            "--local-user",
            &key.fingerprint,
            "--output",
            output.to_str().unwrap(),
            input.to_str().unwrap(),
        ]);
        std::fs::read(output).unwrap()
    }
}

impl Drop for Keyring {
    fn drop(&mut self) {
        stop_agent(self.home.path());
    }
}
