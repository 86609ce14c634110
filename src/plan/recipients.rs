//! Who a message is from and to: the sender, the To/Cc/Bcc lists, local
//! names (`root`) made real addresses by aliases or local_domain, and the
//! SMTP envelope built from them.
//!
//! Belongs here: addresses and the envelope. Not here: reading the message
//! or its parts ([`super::inputs`]), which reads -t's headers through
//! `mail::message`.

use crate::cli::args::Cli;
use crate::config::aliases::{Aliases, LocalRules};
use crate::config::file::{Account, ConfigFile};
use crate::exit::{Error, Result};
use crate::mail::address::{ascii_domain, ascii_mailbox, parse_list, Mailbox};
use crate::plan::precedence::Selected;
use crate::types::{Envelope, QuitAfter};

/// How much of a message a run needs: a test that stops early needs no
/// body (and must not wait on stdin for one), or no envelope at all.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Needs {
    Nothing,
    Sender,
    Envelope,
    Message,
}

impl Needs {
    pub(crate) fn of(cli: &Cli) -> Needs {
        if cli.capabilities {
            return Needs::Nothing;
        }
        match cli.quit_after {
            None | Some(QuitAfter::Data) => Needs::Message,
            Some(QuitAfter::Rcpt) => Needs::Envelope,
            Some(QuitAfter::Mail) => Needs::Sender,
            Some(_) => Needs::Nothing,
        }
    }
}

/// The envelope of a test that stops before DATA.
pub(crate) fn envelope_only(
    selected: &Selected,
    local: &LocalRules,
    needs: Needs,
    cli: &Cli,
) -> Result<Envelope> {
    let sender = match selected.merged.from.as_deref() {
        Some(text) => qualified_sender(Mailbox::parse(text)?, local, &selected.account)?.1,
        None if needs == Needs::Nothing => String::new(),
        None => {
            return Err(Error::usage("no sender address")
                .hint("give --from, set POSTIE_FROM, or set `from` in the config's account"))
        }
    };
    let (to, cc, bcc) = recipient_lists(cli, local)?;
    let recipients = unique_addresses(to.iter().chain(&cc).chain(&bcc));
    if recipients.is_empty() && needs == Needs::Envelope {
        return Err(Error::usage("no recipients")
            .hint("--quit-after rcpt tests the recipients given as arguments"));
    }
    Ok(Envelope {
        sender,
        recipients,
        ..Envelope::default()
    })
}

/// To (arguments and --to), Cc and Bcc, with local names qualified.
pub(crate) fn recipient_lists(
    cli: &Cli,
    local: &LocalRules,
) -> Result<(Vec<Mailbox>, Vec<Mailbox>, Vec<Mailbox>)> {
    let to = qualified(
        mailboxes(&[cli.recipients.clone(), cli.to.clone()].concat())?,
        local,
    )?;
    let cc = qualified(mailboxes(&cli.cc)?, local)?;
    let bcc = qualified(mailboxes(&cli.bcc)?, local)?;
    Ok((to, cc, bcc))
}

/// The From header and the envelope sender for a sender that may be a
/// local name (`--from root`): the envelope gets it qualified with
/// local_domain, else the account's own address, which the server knows;
/// the header keeps the name, qualified as headers are.
pub(crate) fn qualified_sender(
    from: Mailbox,
    local: &LocalRules,
    account: &Account,
) -> Result<(Mailbox, String)> {
    if !from.is_local() {
        let from = ascii_mailbox(&from)?;
        let sender = from.email.clone();
        return Ok((from, sender));
    }
    let account_from = || {
        let own = Mailbox::parse(account.from.as_deref()?).ok()?;
        local.qualify_sender(&own.email)
    };
    let sender = local
        .qualify_sender(&from.email)
        .or_else(account_from)
        .ok_or_else(|| {
            Error::usage(format!("sender {:?} has no domain", from.email))
                .hint("give a full address, or set local_domain or `from` in the account")
        })?;
    let email = local
        .qualify_header(&from.email)
        .unwrap_or_else(|| sender.clone());
    Ok((
        Mailbox {
            name: from.name,
            email: ascii_domain(&email)?,
        },
        ascii_domain(&sender)?,
    ))
}

pub(crate) fn mailboxes(args: &[String]) -> Result<Vec<Mailbox>> {
    let mut all = Vec::new();
    for arg in args {
        all.extend(parse_list(arg)?);
    }
    Ok(all)
}

pub(crate) fn local_rules(config: &ConfigFile, account: &Account) -> Result<LocalRules> {
    // Both were checked when the file was read; a `from` that does not
    // parse is reported where it is used.
    let email = |text: &str| Mailbox::parse(text).ok().map(|m| m.email);
    Ok(LocalRules {
        aliases: account.aliases.as_deref().map(Aliases::load).transpose()?,
        local_domain: account.local_domain.clone(),
        admin: config.admin.as_deref().and_then(email),
        from_domain: account
            .from
            .as_deref()
            .and_then(email)
            .and_then(|e| e.rsplit_once('@').map(|(_, domain)| domain.to_string())),
    })
}

/// Replaces local names (`root`) by what aliases or local_domain make of
/// them, so that headers and envelope carry real addresses; domains become
/// A-labels (IDNA), so that neither needs SMTPUTF8 for them.
pub(crate) fn qualified(list: Vec<Mailbox>, local: &LocalRules) -> Result<Vec<Mailbox>> {
    let mut out = Vec::with_capacity(list.len());
    for mailbox in list {
        if !mailbox.is_local() {
            out.push(mailbox);
            continue;
        }
        let mut expanded = local.expand(&mailbox.email)?;
        if expanded.len() == 1 {
            out.push(Mailbox {
                name: mailbox.name,
                email: expanded.remove(0),
            });
        } else {
            out.extend(
                expanded
                    .into_iter()
                    .map(|email| Mailbox { name: None, email }),
            );
        }
    }
    out.iter().map(ascii_mailbox).collect()
}

/// Each address once, in the order given; case-insensitive, as servers
/// would otherwise deliver twice to `Ops@x` and `ops@x`.
pub(crate) fn unique_addresses<'a>(all: impl Iterator<Item = &'a Mailbox>) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    all.filter(|m| seen.insert(m.email.to_lowercase()))
        .map(|m| m.email.clone())
        .collect()
}
