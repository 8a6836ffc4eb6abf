//! One beanstalk connection: its loop (read a line, answer it, in order) and its state
//! ([`Conn`]: the tube it uses, the tubes it watches, the jobs it reserved). Bad input is
//! answered as beanstalkd answers it and never ends the connection; an I/O error or the
//! client closing does, and then the jobs it still had reserved go back to ready.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::io::AsyncWriteExt;
use tokio::sync::{mpsc, watch};

use super::input::{Input, Next};
use super::protocol::{self, Command, Tube};
use super::stream::{Reader, Writer};
use super::{Beanstalk, tube};
use crate::broker::Envelope;

/// Numbers the connections of this process (their worker names).
static NEXT: AtomicU64 = AtomicU64::new(1);

/// What one connection knows about itself.
pub(super) struct Conn {
    pub(super) shared: Beanstalk,
    /// Its worker name, `beanstalk:<n>`: unlike a socket's (`<sid> <namespace>`), it has
    /// no space.
    pub(super) worker: String,
    pub(super) input: Input<Reader>,
    /// Jobs the broker handed to this connection.
    pub(super) handed: mpsc::UnboundedReceiver<Envelope>,
    pub(super) using: Tube,
    /// In the order watched.
    pub(super) watching: Vec<Tube>,
    /// Jobs it reserved (that it knows of), by id, with their tube.
    pub(super) reserved: BTreeMap<u64, Tube>,
    pub(super) producer: bool,
    pub(super) worker_role: bool,
    /// Tubes it met whose name a broadcast subscriber took (DECISIONS 65), said once.
    pub(super) taken: BTreeSet<Tube>,
}

/// Serves one connection until the client quits or closes, or the server stops.
pub(super) async fn run(
    shared: Beanstalk,
    (reader, mut writer): (Reader, Writer),
    peer: String,
    mut stop: watch::Receiver<bool>,
) {
    let worker = format!("beanstalk:{}", NEXT.fetch_add(1, Ordering::Relaxed));
    tracing::info!(%peer, worker, "beanstalk connection");
    let handed = shared.door.open(&worker);
    shared.stats.connection(true);
    let default = Tube::default_tube();
    shared.stats.tube(&default, |u| {
        u.using += 1;
        u.watching += 1;
    });
    let mut conn = Conn {
        shared: shared.clone(),
        worker: worker.clone(),
        input: Input::new(reader),
        handed,
        using: default.clone(),
        watching: vec![default],
        reserved: BTreeMap::new(),
        producer: false,
        worker_role: false,
        taken: BTreeSet::new(),
    };
    let served = tokio::select! {
        served = serve(&mut conn, &mut writer) => served,
        () = super::stopped(&mut stop) => Ok(()),
    };
    if let Err(err) = served {
        tracing::debug!(%peer, worker, error = %err, "beanstalk connection ended");
    }
    conn.close();
    tracing::info!(%peer, worker, "beanstalk connection closed");
}

/// Reads and answers commands in order until the client quits or closes.
async fn serve(conn: &mut Conn, writer: &mut (impl AsyncWriteExt + Unpin)) -> std::io::Result<()> {
    loop {
        let line = match conn.input.line().await? {
            Next::Line(line) => line,
            Next::TooLong => {
                writer.write_all(b"BAD_FORMAT\r\n").await?;
                if !conn.input.skip_line().await? {
                    return Ok(());
                }
                continue;
            }
            Next::Closed => return Ok(()),
        };
        let command = match protocol::parse(&line) {
            Ok(command) => command,
            Err(refusal) => {
                writer.write_all(refusal.reply()).await?;
                continue;
            }
        };
        let reply = match command {
            Command::Quit => return Ok(()),
            Command::Put {
                priority,
                delay,
                ttr,
                bytes,
            } => {
                // The body and its CRLF.
                let length = bytes as usize + 2;
                if bytes > conn.shared.max_job_bytes {
                    if !conn.input.skip(length).await? {
                        return Ok(());
                    }
                    b"JOB_TOO_BIG\r\n".to_vec()
                } else {
                    let Some(body) = conn.input.exact(length).await? else {
                        return Ok(());
                    };
                    match body.strip_suffix(b"\r\n") {
                        Some(body) => conn.put(priority, delay, ttr, body).await,
                        None => b"EXPECTED_CRLF\r\n".to_vec(),
                    }
                }
            }
            command => match conn.answer(command).await {
                Some(reply) => reply,
                // The client closed while the command waited.
                None => return Ok(()),
            },
        };
        writer.write_all(&reply).await?;
    }
}

impl Conn {
    /// Answers every command but `put` and `quit`; `None` if the client closed meanwhile.
    async fn answer(&mut self, command: Command) -> Option<Vec<u8>> {
        let reply = match command {
            Command::Use(tube) => self.use_tube(tube),
            Command::Watch(tube) => self.watch(tube),
            Command::Ignore(tube) => self.ignore(&tube),
            Command::Reserve => return self.reserve(None).await,
            Command::ReserveWithTimeout(seconds) => return self.reserve(Some(seconds)).await,
            Command::ReserveJob(id) => self.reserve_job(id).await,
            Command::Delete(id) => self.delete(id).await,
            Command::Release {
                id,
                priority,
                delay,
            } => self.release(id, priority, delay).await,
            Command::Bury { id, priority } => self.bury(id, priority).await,
            Command::Touch(id) => self.touch(id),
            Command::Kick(bound) => self.kick(bound).await,
            Command::KickJob(id) => self.kick_job(id).await,
            Command::Peek(id) => self.peek(id).await,
            Command::PeekReady => self.peek_in(crate::broker::Peek::Ready).await,
            Command::PeekDelayed => self.peek_in(crate::broker::Peek::Delayed).await,
            Command::PeekBuried => self.peek_in(crate::broker::Peek::Buried).await,
            Command::StatsJob(id) => self.stats_job(id),
            Command::StatsTube(tube) => self.stats_tube(&tube),
            Command::Stats => self.stats(),
            Command::ListTubes => self.list_tubes(),
            Command::ListTubeUsed => self.list_tube_used(),
            Command::ListTubesWatched => self.list_tubes_watched(),
            Command::PauseTube { tube, delay } => self.pause_tube(&tube, delay),
            Command::Put { .. } | Command::Quit => unreachable!("answered by the loop"),
        };
        Some(reply)
    }

    fn use_tube(&mut self, tube: Tube) -> Vec<u8> {
        self.shared.stats.command("cmd-use");
        self.shared
            .stats
            .tube(&self.using, |u| u.using = u.using.saturating_sub(1));
        self.shared.stats.tube(&tube, |u| u.using += 1);
        let reply = format!("USING {tube}\r\n").into_bytes();
        self.using = tube;
        reply
    }

    fn watch(&mut self, tube: Tube) -> Vec<u8> {
        self.shared.stats.command("cmd-watch");
        if !self.watching.contains(&tube) {
            self.shared.stats.tube(&tube, |u| u.watching += 1);
            self.watching.push(tube);
        }
        format!("WATCHING {}\r\n", self.watching.len()).into_bytes()
    }

    fn ignore(&mut self, tube: &Tube) -> Vec<u8> {
        self.shared.stats.command("cmd-ignore");
        if let Some(at) = self.watching.iter().position(|t| t == tube) {
            if self.watching.len() < 2 {
                return b"NOT_IGNORED\r\n".to_vec();
            }
            self.watching.remove(at);
            self.shared
                .stats
                .tube(tube, |u| u.watching = u.watching.saturating_sub(1));
            // No room there any more.
            self.shared
                .broker
                .close_room(&tube::client(tube), &tube::queue(tube), &self.worker);
        }
        format!("WATCHING {}\r\n", self.watching.len()).into_bytes()
    }

    /// Gives back what the connection held and forgets it (it closed).
    fn close(&mut self) {
        let stats = &self.shared.stats;
        stats.tube(&self.using, |u| u.using = u.using.saturating_sub(1));
        for tube in &self.watching {
            stats.tube(tube, |u| u.watching = u.watching.saturating_sub(1));
        }
        stats.connection(false);
        if self.producer {
            stats.role(true, false);
        }
        if self.worker_role {
            stats.role(false, false);
        }
        self.shared.door.close(&self.worker);
        // Every job it had reserved is ready again (beanstalkd does the same).
        self.shared.broker.detach(&self.worker);
    }
}
