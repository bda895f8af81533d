//! Password hashing: Argon2id at OWASP's parameters (`Argon2::default()`: m = 19 MiB,
//! t = 2, p = 1), run on threads of its own, never on an HTTP worker, at most
//! `concurrency` at once and at the lowest CPU priority (nice 19): a burst of logins
//! takes what the HTTP workers leave, so it cannot starve them (measured: `/health`
//! p99 during 32 concurrent logins, docs/PERFORMANCE.md).

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier, SaltString};
use tokio::sync::Semaphore;

use crate::secret::Secret;

/// How long a hash may wait for its turn before the request is answered 503.
const QUEUE_WAIT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum HashError {
    #[error("too many password checks at once")]
    Busy,
    #[error("password hashing failed: {0}")]
    Failed(String),
}

pub struct Hasher {
    permits: Arc<Semaphore>,
    /// The hashing threads' queue; its length is bounded by `permits`.
    jobs: std::sync::mpsc::Sender<Job>,
    /// Verified against when the e-mail is unknown, so that answer takes as long as a
    /// wrong password. Computed on first use (start-up stays free of hashing).
    dummy: Arc<OnceLock<String>>,
}

impl Hasher {
    pub fn new(concurrency: usize) -> Hasher {
        let concurrency = concurrency.max(1);
        Hasher {
            permits: Arc::new(Semaphore::new(concurrency)),
            jobs: start_threads(concurrency),
            dummy: Arc::default(),
        }
    }

    /// The PHC string of `password`.
    pub async fn hash(&self, password: Secret<String>) -> Result<String, HashError> {
        self.run(move || hash_now(password.expose())).await?
    }

    /// Whether `password` matches `phc`; `None` verifies against the dummy (and fails).
    pub async fn verify(
        &self,
        password: Secret<String>,
        phc: Option<String>,
    ) -> Result<bool, HashError> {
        let real = phc.is_some();
        let dummy = self.dummy.clone();
        let ok = self
            .run(move || {
                let phc = match phc {
                    Some(p) => p,
                    None => dummy
                        .get_or_init(|| hash_now(DUMMY).unwrap_or_default())
                        .clone(),
                };
                PasswordHash::new(&phc).is_ok_and(|parsed| {
                    Argon2::default()
                        .verify_password(password.expose().as_bytes(), &parsed)
                        .is_ok()
                })
            })
            .await?;
        Ok(ok && real)
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, HashError> {
        let permit = tokio::time::timeout(QUEUE_WAIT, self.permits.clone().acquire_owned())
            .await
            .map_err(|_| HashError::Busy)?
            .map_err(|_| HashError::Busy)?;
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = tx.send(work());
            drop(permit);
        });
        self.jobs
            .send(job)
            .map_err(|_| HashError::Failed("the hashing threads are gone".into()))?;
        // Bounded even if no hashing thread could start: never a hung request.
        tokio::time::timeout(QUEUE_WAIT * 3, rx)
            .await
            .map_err(|_| HashError::Busy)?
            .map_err(|_| HashError::Failed("a hashing thread died".into()))
    }
}

type Job = Box<dyn FnOnce() + Send>;

/// `n` hashing threads at the lowest priority, sharing one queue. They end when the
/// `Hasher` (the sender) is dropped.
fn start_threads(n: usize) -> std::sync::mpsc::Sender<Job> {
    let (tx, rx) = std::sync::mpsc::channel::<Job>();
    let rx = Arc::new(std::sync::Mutex::new(rx));
    for i in 0..n {
        let rx = rx.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("veza-hash-{i}"))
            .spawn(move || {
                lowest_priority();
                loop {
                    let job = match rx.lock() {
                        Ok(queue) => queue.recv(),
                        Err(_) => return,
                    };
                    match job {
                        Ok(job) => job(),
                        Err(_) => return,
                    }
                }
            });
        if let Err(e) = spawned {
            log::error!("cannot start a password hashing thread: {e}");
        }
    }
    tx
}

/// Nice 19 for the calling thread (Linux: `setpriority` with `PRIO_PROCESS` and 0 names
/// the calling thread); a failure leaves it at the default, logged.
#[allow(unsafe_code)]
fn lowest_priority() {
    // SAFETY: setpriority takes plain integers and touches no memory of ours.
    let rc = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, 19) };
    if rc != 0 {
        log::warn!(
            "password hashing threads keep the default priority: {}",
            std::io::Error::last_os_error()
        );
    }
}

const DUMMY: &str = "not a password: the unknown-e-mail timing twin";

fn hash_now(password: &str) -> Result<String, HashError> {
    let salt_bytes =
        super::token::random::<16>().ok_or_else(|| HashError::Failed("no randomness".into()))?;
    let salt = SaltString::encode_b64(&salt_bytes).map_err(|e| HashError::Failed(e.to_string()))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| HashError::Failed(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn argon2id_at_owasp_parameters_and_unknown_users_never_verify() {
        let h = Hasher::new(1);
        let phc = h.hash(Secret::new("correct horse".into())).await.unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert!(
            h.verify(Secret::new("correct horse".into()), Some(phc.clone()))
                .await
                .unwrap()
        );
        assert!(
            !h.verify(Secret::new("wrong".into()), Some(phc))
                .await
                .unwrap()
        );
        assert!(!h.verify(Secret::new(DUMMY.into()), None).await.unwrap());
    }
}
