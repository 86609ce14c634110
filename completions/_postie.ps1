
using namespace System.Management.Automation
using namespace System.Management.Automation.Language

Register-ArgumentCompleter -Native -CommandName 'postie' -ScriptBlock {
    param($wordToComplete, $commandAst, $cursorPosition)

    $commandElements = $commandAst.CommandElements
    $command = @(
        'postie'
        for ($i = 1; $i -lt $commandElements.Count; $i++) {
            $element = $commandElements[$i]
            if ($element -isnot [StringConstantExpressionAst] -or
                $element.StringConstantType -ne [StringConstantType]::BareWord -or
                $element.Value.StartsWith('-') -or
                $element.Value -eq $wordToComplete) {
                break
        }
        $element.Value
    }) -join ';'

    $completions = @(switch ($command) {
        'postie' {
            [CompletionResult]::new('--to', '--to', [CompletionResultType]::ParameterName, 'Add To: recipients (repeatable; comma-separated lists allowed)')
            [CompletionResult]::new('-c', '-c', [CompletionResultType]::ParameterName, 'Add Cc: recipients (repeatable; comma-separated lists allowed)')
            [CompletionResult]::new('--cc', '--cc', [CompletionResultType]::ParameterName, 'Add Cc: recipients (repeatable; comma-separated lists allowed)')
            [CompletionResult]::new('-b', '-b', [CompletionResultType]::ParameterName, 'Add blind recipients: envelope only, never written into a header')
            [CompletionResult]::new('--bcc', '--bcc', [CompletionResultType]::ParameterName, 'Add blind recipients: envelope only, never written into a header')
            [CompletionResult]::new('-f', '-f', [CompletionResultType]::ParameterName, 'Sender address, for the From: header and the envelope ("Name <addr>" allowed)')
            [CompletionResult]::new('--from', '--from', [CompletionResultType]::ParameterName, 'Sender address, for the From: header and the envelope ("Name <addr>" allowed)')
            [CompletionResult]::new('-s', '-s', [CompletionResultType]::ParameterName, 'Subject line (UTF-8; encoded as RFC 2047 requires)')
            [CompletionResult]::new('--subject', '--subject', [CompletionResultType]::ParameterName, 'Subject line (UTF-8; encoded as RFC 2047 requires)')
            [CompletionResult]::new('-r', '-r', [CompletionResultType]::ParameterName, 'Reply-To: address(es)')
            [CompletionResult]::new('--reply-to', '--reply-to', [CompletionResultType]::ParameterName, 'Reply-To: address(es)')
            [CompletionResult]::new('-H', '-H ', [CompletionResultType]::ParameterName, 'Extra header, as ''Name: value'' (repeatable; CR or LF in it is refused)')
            [CompletionResult]::new('--header', '--header', [CompletionResultType]::ParameterName, 'Extra header, as ''Name: value'' (repeatable; CR or LF in it is refused)')
            [CompletionResult]::new('--body', '--body', [CompletionResultType]::ParameterName, 'Message body text (instead of standard input)')
            [CompletionResult]::new('--body-file', '--body-file', [CompletionResultType]::ParameterName, 'Read the body from a file (''-'' reads standard input)')
            [CompletionResult]::new('--html', '--html', [CompletionResultType]::ParameterName, 'Add an HTML alternative to the text body, read from this file')
            [CompletionResult]::new('-a', '-a', [CompletionResultType]::ParameterName, 'Attach a file (repeatable; ''-'' reads standard input); append '';name=FILE'' or '';type=MIME/TYPE'' to set its name or type')
            [CompletionResult]::new('--attach', '--attach', [CompletionResultType]::ParameterName, 'Attach a file (repeatable; ''-'' reads standard input); append '';name=FILE'' or '';type=MIME/TYPE'' to set its name or type')
            [CompletionResult]::new('--inline', '--inline', [CompletionResultType]::ParameterName, 'Embed an image for the HTML part (repeatable); reference it as cid:FILENAME or cid:ID')
            [CompletionResult]::new('--message', '--message', [CompletionResultType]::ParameterName, 'Send this ready-made RFC 5322 message instead of composing one (''-'' reads stdin; repeatable)')
            [CompletionResult]::new('--full-name', '--full-name', [CompletionResultType]::ParameterName, 'Display name for a From: header that postie adds to a --message')
            [CompletionResult]::new('--server', '--server', [CompletionResultType]::ParameterName, 'SMTP server: HOST, HOST:PORT, smtp://HOST[:PORT] or smtps://HOST[:PORT]')
            [CompletionResult]::new('--port', '--port', [CompletionResultType]::ParameterName, 'Server port [default: 465 for smtps:// or --tls implicit, else 587]')
            [CompletionResult]::new('--helo', '--helo', [CompletionResultType]::ParameterName, 'Name to announce in EHLO [default: this machine''s host name]')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Seconds to wait for the connection and for each server reply')
            [CompletionResult]::new('--tls', '--tls', [CompletionResultType]::ParameterName, 'TLS mode [default: implicit on port 465, opportunistic for loopback, else starttls]')
            [CompletionResult]::new('--ca-file', '--ca-file', [CompletionResultType]::ParameterName, 'Trust the CA certificates in this PEM file (in addition to the system''s)')
            [CompletionResult]::new('--client-cert', '--client-cert', [CompletionResultType]::ParameterName, 'Client certificate (PEM) to present to the server; needs --client-key')
            [CompletionResult]::new('--client-key', '--client-key', [CompletionResultType]::ParameterName, 'Private key (PEM, PKCS#8) for --client-cert; refused unless private to its owner (chmod 600)')
            [CompletionResult]::new('--user', '--user', [CompletionResultType]::ParameterName, 'User name for SMTP AUTH; the password comes from --password-cmd, POSTIE_PASSWORD or the config')
            [CompletionResult]::new('--password-cmd', '--password-cmd', [CompletionResultType]::ParameterName, 'Command whose first output line is the password (or OAuth2 token), e.g. ''pass show smtp''')
            [CompletionResult]::new('--auth', '--auth', [CompletionResultType]::ParameterName, 'Authentication mechanism [default: auto: over TLS the first of SCRAM-SHA-256, SCRAM-SHA-1, PLAIN, LOGIN the server offers; without TLS only SCRAM or CRAM-MD5]')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Config file [default: $XDG_CONFIG_HOME/postie/config.toml, then /etc/postie/config.toml]')
            [CompletionResult]::new('--account', '--account', [CompletionResultType]::ParameterName, 'Use this account from the config file [default: the one whose `from` matches --from, else `default`, else the only one]')
            [CompletionResult]::new('--quit-after', '--quit-after', [CompletionResultType]::ParameterName, 'Stop cleanly with QUIT after this stage; `rcpt` tests recipients without sending')
            [CompletionResult]::new('--tls-fingerprint', '--tls-fingerprint', [CompletionResultType]::ParameterName, 'Trust only the certificate with this SHA-256 fingerprint (hex, colons allowed)')
            [CompletionResult]::new('--resolver', '--resolver', [CompletionResultType]::ParameterName, 'Send DNS queries for --mx to this server instead of the system''s')
            [CompletionResult]::new('--queue-dir', '--queue-dir', [CompletionResultType]::ParameterName, 'Queue directory [default: /var/spool/postie for root, else $XDG_STATE_HOME/postie/queue]')
            [CompletionResult]::new('--notify', '--notify', [CompletionResultType]::ParameterName, 'Ask for delivery status notifications: never, or any of success,failure,delay (sendmail -N)')
            [CompletionResult]::new('--ret', '--ret', [CompletionResultType]::ParameterName, 'What a failure report returns of the message: full or hdrs (sendmail -R)')
            [CompletionResult]::new('--envid', '--envid', [CompletionResultType]::ParameterName, 'An ID the reports quote as Original-Envelope-Id (sendmail -V)')
            [CompletionResult]::new('--no-text-alternative', '--no-text-alternative', [CompletionResultType]::ParameterName, 'With --html and no text body: send the HTML alone, without the plain-text copy postie makes of it')
            [CompletionResult]::new('-t', '-t', [CompletionResultType]::ParameterName, 'With --message: also send to the To, Cc and Bcc (or Resent-*) addresses in its headers')
            [CompletionResult]::new('--read-recipients', '--read-recipients', [CompletionResultType]::ParameterName, 'With --message: also send to the To, Cc and Bcc (or Resent-*) addresses in its headers')
            [CompletionResult]::new('--partial', '--partial', [CompletionResultType]::ParameterName, 'Send to the accepted recipients even if some were refused (they are still reported)')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Do not verify the server''s certificate (prints a warning). Prefer --ca-file')
            [CompletionResult]::new('--allow-plaintext-auth', '--allow-plaintext-auth', [CompletionResultType]::ParameterName, 'Allow AUTH over an unencrypted connection to a host that is not loopback')
            [CompletionResult]::new('--sendmail', '--sendmail', [CompletionResultType]::ParameterName, 'Take sendmail''s command line (as when called through a link named sendmail)')
            [CompletionResult]::new('--dry-run', '--dry-run', [CompletionResultType]::ParameterName, 'Print the envelope on stderr and the message on stdout; send nothing')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Show the SMTP dialogue on stderr (-vv adds message headers, -vvv the whole message)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Show the SMTP dialogue on stderr (-vv adds message headers, -vvv the whole message)')
            [CompletionResult]::new('--timing', '--timing', [CompletionResultType]::ParameterName, 'Show how long each reply took, and a summary per stage (implies -v)')
            [CompletionResult]::new('--capabilities', '--capabilities', [CompletionResultType]::ParameterName, 'Report the server''s EHLO extensions before and after STARTTLS, and its certificate')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print what became of each message and recipient as JSON on stdout, even on failure')
            [CompletionResult]::new('--test-message', '--test-message', [CompletionResultType]::ParameterName, 'Send a generated test message ("postie test DATE", saying which host sent it)')
            [CompletionResult]::new('--mx', '--mx', [CompletionResultType]::ParameterName, 'Deliver straight to each recipient domain''s mail exchangers (MX) on port 25')
            [CompletionResult]::new('--queue', '--queue', [CompletionResultType]::ParameterName, 'Keep the message in the queue after a temporary failure (the default in sendmail mode)')
            [CompletionResult]::new('--no-queue', '--no-queue', [CompletionResultType]::ParameterName, 'Never queue: a temporary failure is exit 75 (the default outside sendmail mode)')
            [CompletionResult]::new('-4', '-4', [CompletionResultType]::ParameterName, 'Connect over IPv4 only')
            [CompletionResult]::new('--ipv4', '--ipv4', [CompletionResultType]::ParameterName, 'Connect over IPv4 only')
            [CompletionResult]::new('-6', '-6', [CompletionResultType]::ParameterName, 'Connect over IPv6 only')
            [CompletionResult]::new('--ipv6', '--ipv6', [CompletionResultType]::ParameterName, 'Connect over IPv6 only')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print a one-line summary of each option')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print a one-line summary of each option')
            [CompletionResult]::new('--help-long', '--help-long', [CompletionResultType]::ParameterName, 'Print each option with its details (man postie has more)')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('queue', 'queue', [CompletionResultType]::ParameterValue, 'List, send, show, drop or retry queued messages; set up the maildrop')
            [CompletionResult]::new('config', 'config', [CompletionResultType]::ParameterValue, 'About the config file: print a commented example')
            [CompletionResult]::new('oauth2', 'oauth2', [CompletionResultType]::ParameterValue, 'Sign in an OAuth2 account once (its token is then refreshed at each send), or show its token''s state')
            [CompletionResult]::new('dkim', 'dkim', [CompletionResultType]::ParameterValue, 'Make a DKIM signing key and print the DNS record that publishes it')
            break
        }
        'postie;queue' {
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Config file for the queue directory and queue_max_age. A flush sends each message with the config it was queued with (its --config, else POSTIE_CONFIG or the default path, as read at flush time)')
            [CompletionResult]::new('--queue-dir', '--queue-dir', [CompletionResultType]::ParameterName, 'Queue directory [default: /var/spool/postie for root, else $XDG_STATE_HOME/postie/queue]')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List queued messages: id, age, sender, recipients, attempts, last error')
            [CompletionResult]::new('flush', 'flush', [CompletionResultType]::ParameterValue, 'Try to send every queued message that is due (exponential backoff per message)')
            [CompletionResult]::new('show', 'show', [CompletionResultType]::ParameterValue, 'Show one queued message: its envelope, history and the message itself')
            [CompletionResult]::new('drop', 'drop', [CompletionResultType]::ParameterValue, 'Delete one queued message without sending it')
            [CompletionResult]::new('init', 'init', [CompletionResultType]::ParameterValue, 'Create or repair the system spool and its maildrop (root; see MAILDROP)')
            [CompletionResult]::new('retry', 'retry', [CompletionResultType]::ParameterValue, 'Move a message from failed/ back into the queue, as new: attempts and age start again; one kept before it could be prepared (sendmail mode) is prepared again with today''s config')
            break
        }
        'postie;queue;list' {
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Config file for the queue directory and queue_max_age. A flush sends each message with the config it was queued with (its --config, else POSTIE_CONFIG or the default path, as read at flush time)')
            [CompletionResult]::new('--queue-dir', '--queue-dir', [CompletionResultType]::ParameterName, 'Queue directory [default: /var/spool/postie for root, else $XDG_STATE_HOME/postie/queue]')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print JSON for scripts')
            [CompletionResult]::new('--failed', '--failed', [CompletionResultType]::ParameterName, 'List the messages given up on (in failed/) instead, with why')
            break
        }
        'postie;queue;flush' {
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Config file for the queue directory and queue_max_age. A flush sends each message with the config it was queued with (its --config, else POSTIE_CONFIG or the default path, as read at flush time)')
            [CompletionResult]::new('--queue-dir', '--queue-dir', [CompletionResultType]::ParameterName, 'Queue directory [default: /var/spool/postie for root, else $XDG_STATE_HOME/postie/queue]')
            [CompletionResult]::new('--now', '--now', [CompletionResultType]::ParameterName, 'Try every message now, ignoring the backoff')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Say what was sent, and show the SMTP dialogue with -vv')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Say what was sent, and show the SMTP dialogue with -vv')
            break
        }
        'postie;queue;show' {
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Config file for the queue directory and queue_max_age. A flush sends each message with the config it was queued with (its --config, else POSTIE_CONFIG or the default path, as read at flush time)')
            [CompletionResult]::new('--queue-dir', '--queue-dir', [CompletionResultType]::ParameterName, 'Queue directory [default: /var/spool/postie for root, else $XDG_STATE_HOME/postie/queue]')
            break
        }
        'postie;queue;drop' {
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Config file for the queue directory and queue_max_age. A flush sends each message with the config it was queued with (its --config, else POSTIE_CONFIG or the default path, as read at flush time)')
            [CompletionResult]::new('--queue-dir', '--queue-dir', [CompletionResultType]::ParameterName, 'Queue directory [default: /var/spool/postie for root, else $XDG_STATE_HOME/postie/queue]')
            break
        }
        'postie;queue;init' {
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Config file for the queue directory and queue_max_age. A flush sends each message with the config it was queued with (its --config, else POSTIE_CONFIG or the default path, as read at flush time)')
            [CompletionResult]::new('--queue-dir', '--queue-dir', [CompletionResultType]::ParameterName, 'Queue directory [default: /var/spool/postie for root, else $XDG_STATE_HOME/postie/queue]')
            break
        }
        'postie;queue;retry' {
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Config file for the queue directory and queue_max_age. A flush sends each message with the config it was queued with (its --config, else POSTIE_CONFIG or the default path, as read at flush time)')
            [CompletionResult]::new('--queue-dir', '--queue-dir', [CompletionResultType]::ParameterName, 'Queue directory [default: /var/spool/postie for root, else $XDG_STATE_HOME/postie/queue]')
            break
        }
        'postie;config' {
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('example', 'example', [CompletionResultType]::ParameterValue, 'Print a commented example config with every key (save it as ~/.config/postie/config.toml)')
            break
        }
        'postie;config;example' {
            break
        }
        'postie;oauth2' {
            [CompletionResult]::new('--account', '--account', [CompletionResultType]::ParameterName, 'The account [default: the config''s default account]')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Config file')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('login', 'login', [CompletionResultType]::ParameterValue, 'Sign in: print a URL and a code to enter there (device flow), or with --browser a URL to open (always for google); the token is stored in the state directory')
            [CompletionResult]::new('status', 'status', [CompletionResultType]::ParameterValue, 'Show the account, provider, scopes and when the access token expires (never a token)')
            break
        }
        'postie;oauth2;login' {
            [CompletionResult]::new('--account', '--account', [CompletionResultType]::ParameterName, 'The account [default: the config''s default account]')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Config file')
            [CompletionResult]::new('--browser', '--browser', [CompletionResultType]::ParameterName, 'Sign in in a browser on this machine (authorization code with PKCE and a redirect to 127.0.0.1) instead of entering a code')
            break
        }
        'postie;oauth2;status' {
            [CompletionResult]::new('--account', '--account', [CompletionResultType]::ParameterName, 'The account [default: the config''s default account]')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Config file')
            break
        }
        'postie;dkim' {
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('keygen', 'keygen', [CompletionResultType]::ParameterValue, 'Write a new private key (mode 0600, never over an existing file) and print the TXT record to publish at SELECTOR._domainkey.DOMAIN, with the config lines on stderr')
            break
        }
        'postie;dkim;keygen' {
            [CompletionResult]::new('--selector', '--selector', [CompletionResultType]::ParameterName, 'The selector: the name of this key under the domain (e.g. the month, 2026-12)')
            [CompletionResult]::new('--domain', '--domain', [CompletionResultType]::ParameterName, 'The domain the key signs for (d=), the From domain or a parent of it')
            [CompletionResult]::new('--algorithm', '--algorithm', [CompletionResultType]::ParameterName, 'Key type; rsa where in doubt')
            [CompletionResult]::new('--bits', '--bits', [CompletionResultType]::ParameterName, 'RSA key size in bits, 2048 to 8192 (DNS TXT records over about 4096 bits are unwieldy) [default: 2048]; not for ed25519, whose keys have one size')
            [CompletionResult]::new('--key-file', '--key-file', [CompletionResultType]::ParameterName, 'Where to write the private key [default: SELECTOR.private in the current directory]')
            break
        }
    })

    $completions.Where{ $_.CompletionText -like "$wordToComplete*" } |
        Sort-Object -Property ListItemText
}
