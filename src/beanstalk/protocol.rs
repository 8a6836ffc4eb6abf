//! The beanstalkd text protocol (protocol.txt of beanstalkd 1.12), pure: command lines in,
//! [`Command`]s or the error word out, and the reply lines. No I/O here.
//!
//! Parsing follows beanstalkd's own rules, byte for byte where a client can tell: commands
//! are recognized by prefix in beanstalkd's order (so `statsX` is a malformed `stats`,
//! answered `BAD_FORMAT`, while `HELLO` is `UNKNOWN_COMMAND`), numbers are unsigned decimals
//! (leading zeros and extra spaces before them allowed, anything after the last one
//! refused), and tube names are 1 to 200 of the protocol's characters, not starting with `-`.

use std::fmt;

/// The longest command line, `\r\n` included (beanstalkd's `LINE_BUF_SIZE`).
pub const MAX_LINE: usize = 224;

/// The longest tube name, in bytes.
pub const MAX_TUBE: usize = 200;

/// Whether `b` may be in a tube name: `A-Z a-z 0-9 - + / ; . $ _ ( )`.
fn tube_char(b: &u8) -> bool {
    b.is_ascii_alphanumeric() || b"-+/;.$_()".contains(b)
}

/// A valid tube name (see the module docs).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Tube(String);

impl Tube {
    /// Checks a tube name as beanstalkd does.
    pub fn parse(raw: &[u8]) -> Option<Self> {
        let valid =
            !raw.is_empty() && raw.len() <= MAX_TUBE && raw[0] != b'-' && raw.iter().all(tube_char);
        // Only ASCII gets this far.
        valid.then(|| Self(String::from_utf8_lossy(raw).into_owned()))
    }

    /// The tube every connection uses and watches at first.
    pub fn default_tube() -> Self {
        Self("default".into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Tube {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One command of the protocol, parsed from its line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// The body (`bytes` of it, then `\r\n`) follows the line. Delay and TTR in seconds.
    Put {
        priority: u32,
        delay: u32,
        ttr: u32,
        bytes: u32,
    },
    Use(Tube),
    Watch(Tube),
    Ignore(Tube),
    Reserve,
    /// Seconds.
    ReserveWithTimeout(u32),
    ReserveJob(u64),
    Delete(u64),
    Release {
        id: u64,
        priority: u32,
        delay: u32,
    },
    Bury {
        id: u64,
        priority: u32,
    },
    Touch(u64),
    Kick(u64),
    KickJob(u64),
    Peek(u64),
    PeekReady,
    PeekDelayed,
    PeekBuried,
    StatsJob(u64),
    StatsTube(Tube),
    Stats,
    ListTubes,
    ListTubeUsed,
    ListTubesWatched,
    PauseTube {
        tube: Tube,
        delay: u32,
    },
    Quit,
}

/// Why a line is not a command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// A known command with malformed arguments (or a NUL byte in the line).
    BadFormat,
    /// No command starts the line.
    UnknownCommand,
}

impl Refusal {
    /// The reply line.
    pub fn reply(self) -> &'static [u8] {
        match self {
            Refusal::BadFormat => b"BAD_FORMAT\r\n",
            Refusal::UnknownCommand => b"UNKNOWN_COMMAND\r\n",
        }
    }
}

/// Which command a line starts with, in beanstalkd's order of trying (a prefix match).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Word {
    Put,
    Peek,
    PeekReady,
    PeekDelayed,
    PeekBuried,
    ReserveWithTimeout,
    ReserveJob,
    Reserve,
    Delete,
    Release,
    Bury,
    Kick,
    KickJob,
    Touch,
    StatsJob,
    StatsTube,
    Stats,
    Use,
    Watch,
    Ignore,
    ListTubesWatched,
    ListTubeUsed,
    ListTubes,
    Quit,
    PauseTube,
}

const WORDS: [(&str, Word); 25] = [
    ("put ", Word::Put),
    ("peek ", Word::Peek),
    ("peek-ready", Word::PeekReady),
    ("peek-delayed", Word::PeekDelayed),
    ("peek-buried", Word::PeekBuried),
    ("reserve-with-timeout ", Word::ReserveWithTimeout),
    ("reserve-job ", Word::ReserveJob),
    ("reserve", Word::Reserve),
    ("delete ", Word::Delete),
    ("release ", Word::Release),
    ("bury ", Word::Bury),
    ("kick ", Word::Kick),
    ("kick-job ", Word::KickJob),
    ("touch ", Word::Touch),
    ("stats-job ", Word::StatsJob),
    ("stats-tube ", Word::StatsTube),
    ("stats", Word::Stats),
    ("use ", Word::Use),
    ("watch ", Word::Watch),
    ("ignore ", Word::Ignore),
    ("list-tubes-watched", Word::ListTubesWatched),
    ("list-tube-used", Word::ListTubeUsed),
    ("list-tubes", Word::ListTubes),
    ("quit", Word::Quit),
    ("pause-tube", Word::PauseTube),
];

/// Parses one command line, without its `\r\n`.
pub fn parse(line: &[u8]) -> Result<Command, Refusal> {
    use Refusal::BadFormat;
    if line.contains(&0) {
        return Err(BadFormat);
    }
    let Some((prefix, word)) = WORDS
        .iter()
        .find(|(prefix, _)| line.starts_with(prefix.as_bytes()))
    else {
        return Err(Refusal::UnknownCommand);
    };
    let rest = &line[prefix.len()..];
    let exact = |command: Command| {
        if rest.is_empty() {
            Ok(command)
        } else {
            Err(BadFormat)
        }
    };
    let mut args = Args(rest);
    let command = match word {
        Word::Put => {
            let (priority, delay, ttr) = (args.u32()?, args.u32()?, args.u32()?);
            let bytes = args.u32()?;
            args.end()?;
            Command::Put {
                priority,
                delay,
                ttr,
                bytes,
            }
        }
        Word::Peek => Command::Peek(args.last_u64()?),
        Word::PeekReady => exact(Command::PeekReady)?,
        Word::PeekDelayed => exact(Command::PeekDelayed)?,
        Word::PeekBuried => exact(Command::PeekBuried)?,
        Word::ReserveWithTimeout => {
            let seconds = args.u32()?;
            args.end()?;
            Command::ReserveWithTimeout(seconds)
        }
        Word::ReserveJob => Command::ReserveJob(args.last_u64()?),
        Word::Reserve => exact(Command::Reserve)?,
        Word::Delete => Command::Delete(args.last_u64()?),
        Word::Release => {
            let (id, priority) = (args.u64()?, args.u32()?);
            let delay = args.u32()?;
            args.end()?;
            Command::Release {
                id,
                priority,
                delay,
            }
        }
        Word::Bury => {
            let (id, priority) = (args.u64()?, args.u32()?);
            args.end()?;
            Command::Bury { id, priority }
        }
        Word::Kick => Command::Kick(kick_bound(rest)?),
        Word::KickJob => Command::KickJob(args.last_u64()?),
        Word::Touch => Command::Touch(args.last_u64()?),
        Word::StatsJob => Command::StatsJob(args.last_u64()?),
        Word::StatsTube => Command::StatsTube(Tube::parse(rest).ok_or(BadFormat)?),
        Word::Stats => exact(Command::Stats)?,
        Word::Use => Command::Use(Tube::parse(rest).ok_or(BadFormat)?),
        Word::Watch => Command::Watch(Tube::parse(rest).ok_or(BadFormat)?),
        Word::Ignore => Command::Ignore(Tube::parse(rest).ok_or(BadFormat)?),
        Word::ListTubesWatched => exact(Command::ListTubesWatched)?,
        Word::ListTubeUsed => exact(Command::ListTubeUsed)?,
        Word::ListTubes => exact(Command::ListTubes)?,
        // beanstalkd quits on anything starting with `quit`.
        Word::Quit => Command::Quit,
        Word::PauseTube => {
            let tube = args.tube()?;
            let delay = args.u32()?;
            args.end()?;
            Command::PauseTube { tube, delay }
        }
    };
    Ok(command)
}

/// The arguments after a command word: numbers read as beanstalkd's `read_u32`/`read_u64`.
struct Args<'a>(&'a [u8]);

impl Args<'_> {
    fn skip_spaces(&mut self) {
        while let [b' ', rest @ ..] = self.0 {
            self.0 = rest;
        }
    }

    /// An unsigned decimal after optional spaces; at least one digit, no sign.
    fn u64(&mut self) -> Result<u64, Refusal> {
        self.skip_spaces();
        let digits = self.0.iter().take_while(|b| b.is_ascii_digit()).count();
        if digits == 0 {
            return Err(Refusal::BadFormat);
        }
        let (number, rest) = self.0.split_at(digits);
        self.0 = rest;
        std::str::from_utf8(number)
            .ok()
            .and_then(|n| n.parse().ok())
            .ok_or(Refusal::BadFormat)
    }

    fn u32(&mut self) -> Result<u32, Refusal> {
        u32::try_from(self.u64()?).map_err(|_| Refusal::BadFormat)
    }

    /// The last argument: a number with nothing after it.
    fn last_u64(&mut self) -> Result<u64, Refusal> {
        let number = self.u64()?;
        self.end()?;
        Ok(number)
    }

    /// A tube name after optional spaces, up to the first character that cannot be in one.
    fn tube(&mut self) -> Result<Tube, Refusal> {
        self.skip_spaces();
        let len = self.0.iter().take_while(|b| tube_char(b)).count();
        let (name, rest) = self.0.split_at(len);
        self.0 = rest;
        Tube::parse(name).ok_or(Refusal::BadFormat)
    }

    fn end(&self) -> Result<(), Refusal> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(Refusal::BadFormat)
        }
    }
}

/// `kick`'s bound, read as C's `strtoul` reads it (beanstalkd does): spaces, an optional
/// sign (a minus wraps around), digits, and anything after them ignored.
fn kick_bound(text: &[u8]) -> Result<u64, Refusal> {
    let text = text.trim_ascii_start();
    let (negative, digits) = match text {
        [b'-', rest @ ..] => (true, rest),
        [b'+', rest @ ..] => (false, rest),
        _ => (false, text),
    };
    let len = digits.iter().take_while(|b| b.is_ascii_digit()).count();
    if len == 0 {
        return Err(Refusal::BadFormat);
    }
    let number: u64 = std::str::from_utf8(&digits[..len])
        .ok()
        .and_then(|n| n.parse().ok())
        .ok_or(Refusal::BadFormat)?;
    Ok(if negative {
        number.wrapping_neg()
    } else {
        number
    })
}

/// A reply carrying a job: `RESERVED`/`FOUND <id> <bytes>\r\n<body>\r\n`.
pub fn job_reply(word: &str, id: u64, body: &[u8]) -> Vec<u8> {
    let mut reply = format!("{word} {id} {}\r\n", body.len()).into_bytes();
    reply.extend_from_slice(body);
    reply.extend_from_slice(b"\r\n");
    reply
}

/// A reply carrying YAML: `OK <bytes>\r\n<yaml>\r\n`.
pub fn ok_reply(yaml: &str) -> Vec<u8> {
    let mut reply = format!("OK {}\r\n", yaml.len()).into_bytes();
    reply.extend_from_slice(yaml.as_bytes());
    reply.extend_from_slice(b"\r\n");
    reply
}

/// A YAML list of tube names, as `list-tubes` answers.
pub fn yaml_list<'a>(names: impl IntoIterator<Item = &'a str>) -> String {
    let mut yaml = String::from("---\n");
    for name in names {
        yaml.push_str("- ");
        yaml.push_str(name);
        yaml.push('\n');
    }
    yaml
}

/// A YAML dictionary of stats, in the given order.
pub fn yaml_dict(fields: &[(&str, String)]) -> String {
    let mut yaml = String::from("---\n");
    for (key, value) in fields {
        yaml.push_str(key);
        yaml.push_str(": ");
        yaml.push_str(value);
        yaml.push('\n');
    }
    yaml
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// Whatever a client sends as a line, parsing answers (a command or a refusal)
        /// and never panics; a tube it accepts is a valid tube name.
        #[test]
        fn any_line_is_a_command_or_a_refusal(line in proptest::collection::vec(any::<u8>(), 0..240)) {
            if let Ok(Command::Use(tube) | Command::Watch(tube) | Command::Ignore(tube)) = parse(&line) {
                prop_assert!(Tube::parse(tube.as_str().as_bytes()).is_some());
            }
        }

        /// Lines built from the protocol's own words and numbers parse without panicking.
        #[test]
        fn command_like_lines_parse_or_are_refused(
            word in proptest::sample::select(WORDS.iter().map(|(w, _)| *w).collect::<Vec<_>>()),
            args in "[0-9a-z -]{0,40}",
        ) {
            let _ = parse(format!("{word}{args}").as_bytes());
        }
    }

    fn tube(name: &str) -> Tube {
        Tube::parse(name.as_bytes()).unwrap()
    }

    #[test]
    fn put_takes_four_unsigned_32_bit_numbers_and_nothing_after_them() {
        assert_eq!(
            parse(b"put 4294967295 0 4294967295 65535"),
            Ok(Command::Put {
                priority: u32::MAX,
                delay: 0,
                ttr: u32::MAX,
                bytes: 65535
            })
        );
        assert_eq!(
            parse(b"put  01 2  3 4"),
            Ok(Command::Put {
                priority: 1,
                delay: 2,
                ttr: 3,
                bytes: 4
            }),
            "extra spaces and leading zeros are fine"
        );
        for bad in [
            &b"put 4294967296 0 1 1"[..],
            b"put +1 0 1 1",
            b"put -1 0 1 1",
            b"put 1 2 3 4 ",
            b"put 1 2 3",
            b"put 1 2 3 x",
            b"put 1 2 3 4x",
        ] {
            assert_eq!(
                parse(bad),
                Err(Refusal::BadFormat),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn commands_are_recognized_by_prefix_in_beanstalkds_order() {
        assert_eq!(parse(b"HELLO"), Err(Refusal::UnknownCommand));
        assert_eq!(parse(b""), Err(Refusal::UnknownCommand));
        assert_eq!(parse(b"kick"), Err(Refusal::UnknownCommand), "no space");
        assert_eq!(parse(b"statsX"), Err(Refusal::BadFormat));
        assert_eq!(parse(b"reserve "), Err(Refusal::BadFormat));
        assert_eq!(parse(b"list-tubesX"), Err(Refusal::BadFormat));
        assert_eq!(parse(b"quitX"), Ok(Command::Quit));
        assert_eq!(parse(b"reserve"), Ok(Command::Reserve));
        assert_eq!(parse(b"kick-job 7"), Ok(Command::KickJob(7)));
        assert_eq!(
            parse(b"stats-tube default"),
            Ok(Command::StatsTube(tube("default")))
        );
        assert_eq!(parse(b"list-tubes-watched"), Ok(Command::ListTubesWatched));
        assert_eq!(parse(b"list-tube-used"), Ok(Command::ListTubeUsed));
        assert_eq!(parse(b"peek-ready"), Ok(Command::PeekReady));
        assert_eq!(parse(b"peek 0"), Ok(Command::Peek(0)));
        assert_eq!(parse(b"peek x"), Err(Refusal::BadFormat));
    }

    #[test]
    fn a_nul_byte_makes_any_line_malformed() {
        assert_eq!(parse(b"use a\0b"), Err(Refusal::BadFormat));
        assert_eq!(parse(b"\0"), Err(Refusal::BadFormat));
    }

    #[test]
    fn ids_are_unsigned_64_bit() {
        assert_eq!(
            parse(b"delete 18446744073709551615"),
            Ok(Command::Delete(u64::MAX))
        );
        assert_eq!(
            parse(b"delete 18446744073709551616"),
            Err(Refusal::BadFormat)
        );
        assert_eq!(parse(b"delete -1"), Err(Refusal::BadFormat));
        assert_eq!(parse(b"delete 01"), Ok(Command::Delete(1)));
        assert_eq!(
            parse(b"release 5 10 0"),
            Ok(Command::Release {
                id: 5,
                priority: 10,
                delay: 0
            })
        );
        assert_eq!(parse(b"release 1 2"), Err(Refusal::BadFormat));
        assert_eq!(parse(b"bury 1"), Err(Refusal::BadFormat));
        assert_eq!(parse(b"bury 1 2"), Ok(Command::Bury { id: 1, priority: 2 }));
    }

    #[test]
    fn tube_names_are_up_to_200_protocol_characters_not_starting_with_a_dash() {
        let longest = "a".repeat(MAX_TUBE);
        assert_eq!(
            parse(format!("use {longest}").as_bytes()),
            Ok(Command::Use(tube(&longest)))
        );
        let every = "AZaz09-+/;.$_()";
        assert_eq!(
            parse(format!("watch {every}").as_bytes()),
            Ok(Command::Watch(tube(every)))
        );
        for bad in [
            format!("use {longest}a"),
            "use -foo".into(),
            "use  foo".into(),
            "use fo o".into(),
            "use ".into(),
            "use caf\u{e9}".into(),
            "ignore a*b".into(),
        ] {
            assert_eq!(parse(bad.as_bytes()), Err(Refusal::BadFormat), "{bad}");
        }
    }

    #[test]
    fn kick_reads_its_bound_as_strtoul_does() {
        assert_eq!(parse(b"kick 5"), Ok(Command::Kick(5)));
        assert_eq!(parse(b"kick 5abc"), Ok(Command::Kick(5)));
        assert_eq!(parse(b"kick -1"), Ok(Command::Kick(u64::MAX)));
        assert_eq!(parse(b"kick "), Err(Refusal::BadFormat));
        assert_eq!(parse(b"kick x"), Err(Refusal::BadFormat));
    }

    #[test]
    fn pause_tube_takes_a_tube_and_seconds() {
        let expected = Ok(Command::PauseTube {
            tube: tube("default"),
            delay: 0,
        });
        assert_eq!(parse(b"pause-tube default 0"), expected);
        assert_eq!(
            parse(b"pause-tubedefault 0"),
            expected,
            "beanstalkd needs no space"
        );
        assert_eq!(parse(b"pause-tube default"), Err(Refusal::BadFormat));
    }

    #[test]
    fn replies_frame_their_data_with_its_length() {
        assert_eq!(job_reply("RESERVED", 3, b"hi"), b"RESERVED 3 2\r\nhi\r\n");
        assert_eq!(job_reply("FOUND", 1, b""), b"FOUND 1 0\r\n\r\n");
        assert_eq!(
            ok_reply(&yaml_list(["default", "x"])),
            b"OK 18\r\n---\n- default\n- x\n\r\n"
        );
        assert_eq!(
            yaml_dict(&[("id", "1".into()), ("tube", "a".into())]),
            "---\nid: 1\ntube: a\n"
        );
    }
}
