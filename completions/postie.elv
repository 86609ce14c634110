
use builtin;
use str;

set edit:completion:arg-completer[postie] = {|@words|
    fn spaces {|n|
        builtin:repeat $n ' ' | str:join ''
    }
    fn cand {|text desc|
        edit:complex-candidate $text &display=$text' '(spaces (- 14 (wcswidth $text)))$desc
    }
    var command = 'postie'
    for word $words[1..-1] {
        if (str:has-prefix $word '-') {
            break
        }
        set command = $command';'$word
    }
    var completions = [
        &'postie'= {
            cand --to 'Add To: recipients (repeatable; comma-separated lists allowed)'
            cand -c 'Add Cc: recipients (repeatable; comma-separated lists allowed)'
            cand --cc 'Add Cc: recipients (repeatable; comma-separated lists allowed)'
            cand -b 'Add blind recipients: envelope only, never written into a header'
            cand --bcc 'Add blind recipients: envelope only, never written into a header'
            cand -f 'Sender address, for the From: header and the envelope ("Name <addr>" allowed)'
            cand --from 'Sender address, for the From: header and the envelope ("Name <addr>" allowed)'
            cand -s 'Subject line (UTF-8; encoded as RFC 2047 requires)'
            cand --subject 'Subject line (UTF-8; encoded as RFC 2047 requires)'
            cand -r 'Reply-To: address(es)'
            cand --reply-to 'Reply-To: address(es)'
            cand -H 'Extra header, as ''Name: value'' (repeatable; CR or LF in it is refused)'
            cand --header 'Extra header, as ''Name: value'' (repeatable; CR or LF in it is refused)'
            cand --body 'Message body text (instead of standard input)'
            cand --body-file 'Read the body from a file (''-'' reads standard input)'
            cand --html 'Add an HTML alternative to the text body, read from this file'
            cand -a 'Attach a file (repeatable; ''-'' reads standard input); append '';name=FILE'' or '';type=MIME/TYPE'' to set its name or type'
            cand --attach 'Attach a file (repeatable; ''-'' reads standard input); append '';name=FILE'' or '';type=MIME/TYPE'' to set its name or type'
            cand --inline 'Embed an image for the HTML part (repeatable); reference it as cid:FILENAME or cid:ID'
            cand --message 'Send this ready-made RFC 5322 message instead of composing one (''-'' reads stdin; repeatable)'
            cand --full-name 'Display name for a From: header that postie adds to a --message'
            cand --server 'SMTP server: HOST, HOST:PORT, smtp://HOST[:PORT] or smtps://HOST[:PORT]'
            cand --port 'Server port [default: 465 for smtps:// or --tls implicit, else 587]'
            cand --helo 'Name to announce in EHLO [default: this machine''s host name]'
            cand --timeout 'Seconds to wait for the connection and for each server reply'
            cand --tls 'TLS mode [default: implicit on port 465, opportunistic for loopback, else starttls]'
            cand --ca-file 'Trust the CA certificates in this PEM file (in addition to the system''s)'
            cand --client-cert 'Client certificate (PEM) to present to the server; needs --client-key'
            cand --client-key 'Private key (PEM, PKCS#8) for --client-cert; refused unless private to its owner (chmod 600)'
            cand --user 'User name for SMTP AUTH; the password comes from --password-cmd, POSTIE_PASSWORD or the config'
            cand --password-cmd 'Command whose first output line is the password (or OAuth2 token), e.g. ''pass show smtp'''
            cand --auth 'Authentication mechanism [default: auto: over TLS the first of SCRAM-SHA-256, SCRAM-SHA-1, PLAIN, LOGIN the server offers; without TLS only SCRAM or CRAM-MD5]'
            cand --config 'Config file [default: $XDG_CONFIG_HOME/postie/config.toml, then /etc/postie/config.toml]'
            cand --account 'Use this account from the config file [default: the one whose `from` matches --from, else `default`, else the only one]'
            cand --quit-after 'Stop cleanly with QUIT after this stage; `rcpt` tests recipients without sending'
            cand --tls-fingerprint 'Trust only the certificate with this SHA-256 fingerprint (hex, colons allowed)'
            cand --resolver 'Send DNS queries for --mx to this server instead of the system''s'
            cand --queue-dir 'Queue directory [default: /var/spool/postie for root, else $XDG_STATE_HOME/postie/queue]'
            cand --notify 'Ask for delivery status notifications: never, or any of success,failure,delay (sendmail -N)'
            cand --ret 'What a failure report returns of the message: full or hdrs (sendmail -R)'
            cand --envid 'An ID the reports quote as Original-Envelope-Id (sendmail -V)'
            cand --no-text-alternative 'With --html and no text body: send the HTML alone, without the plain-text copy postie makes of it'
            cand -t 'With --message: also send to the To, Cc and Bcc (or Resent-*) addresses in its headers'
            cand --read-recipients 'With --message: also send to the To, Cc and Bcc (or Resent-*) addresses in its headers'
            cand --partial 'Send to the accepted recipients even if some were refused (they are still reported)'
            cand --insecure 'Do not verify the server''s certificate (prints a warning). Prefer --ca-file'
            cand --allow-plaintext-auth 'Allow AUTH over an unencrypted connection to a host that is not loopback'
            cand --sendmail 'Take sendmail''s command line (as when called through a link named sendmail)'
            cand --dry-run 'Print the envelope on stderr and the message on stdout; send nothing'
            cand -v 'Show the SMTP dialogue on stderr (-vv adds message headers, -vvv the whole message)'
            cand --verbose 'Show the SMTP dialogue on stderr (-vv adds message headers, -vvv the whole message)'
            cand --timing 'Show how long each reply took, and a summary per stage (implies -v)'
            cand --capabilities 'Report the server''s EHLO extensions before and after STARTTLS, and its certificate'
            cand --json 'Print what became of each message and recipient as JSON on stdout, even on failure'
            cand --test-message 'Send a generated test message ("postie test DATE", saying which host sent it)'
            cand --mx 'Deliver straight to each recipient domain''s mail exchangers (MX) on port 25'
            cand --queue 'Keep the message in the queue after a temporary failure (the default in sendmail mode)'
            cand --no-queue 'Never queue: a temporary failure is exit 75 (the default outside sendmail mode)'
            cand -4 'Connect over IPv4 only'
            cand --ipv4 'Connect over IPv4 only'
            cand -6 'Connect over IPv6 only'
            cand --ipv6 'Connect over IPv6 only'
            cand -h 'Print a one-line summary of each option'
            cand --help 'Print a one-line summary of each option'
            cand --help-long 'Print each option with its details (man postie has more)'
            cand -V 'Print version'
            cand --version 'Print version'
            cand queue 'List, send, show, drop or retry queued messages; set up the maildrop'
            cand config 'About the config file: print a commented example'
            cand oauth2 'Sign in an OAuth2 account once (its token is then refreshed at each send), or show its token''s state'
            cand dkim 'Make a DKIM signing key and print the DNS record that publishes it'
        }
        &'postie;queue'= {
            cand --config 'Config file for the queue directory and queue_max_age. A flush sends each message with the config it was queued with (its --config, else POSTIE_CONFIG or the default path, as read at flush time)'
            cand --queue-dir 'Queue directory [default: /var/spool/postie for root, else $XDG_STATE_HOME/postie/queue]'
            cand -V 'Print version'
            cand --version 'Print version'
            cand list 'List queued messages: id, age, sender, recipients, attempts, last error'
            cand flush 'Try to send every queued message that is due (exponential backoff per message)'
            cand show 'Show one queued message: its envelope, history and the message itself'
            cand drop 'Delete one queued message without sending it'
            cand init 'Create or repair the system spool and its maildrop (root; see MAILDROP)'
            cand retry 'Move a message from failed/ back into the queue, as new: attempts and age start again; one kept before it could be prepared (sendmail mode) is prepared again with today''s config'
        }
        &'postie;queue;list'= {
            cand --config 'Config file for the queue directory and queue_max_age. A flush sends each message with the config it was queued with (its --config, else POSTIE_CONFIG or the default path, as read at flush time)'
            cand --queue-dir 'Queue directory [default: /var/spool/postie for root, else $XDG_STATE_HOME/postie/queue]'
            cand --json 'Print JSON for scripts'
            cand --failed 'List the messages given up on (in failed/) instead, with why'
        }
        &'postie;queue;flush'= {
            cand --config 'Config file for the queue directory and queue_max_age. A flush sends each message with the config it was queued with (its --config, else POSTIE_CONFIG or the default path, as read at flush time)'
            cand --queue-dir 'Queue directory [default: /var/spool/postie for root, else $XDG_STATE_HOME/postie/queue]'
            cand --now 'Try every message now, ignoring the backoff'
            cand -v 'Say what was sent, and show the SMTP dialogue with -vv'
            cand --verbose 'Say what was sent, and show the SMTP dialogue with -vv'
        }
        &'postie;queue;show'= {
            cand --config 'Config file for the queue directory and queue_max_age. A flush sends each message with the config it was queued with (its --config, else POSTIE_CONFIG or the default path, as read at flush time)'
            cand --queue-dir 'Queue directory [default: /var/spool/postie for root, else $XDG_STATE_HOME/postie/queue]'
        }
        &'postie;queue;drop'= {
            cand --config 'Config file for the queue directory and queue_max_age. A flush sends each message with the config it was queued with (its --config, else POSTIE_CONFIG or the default path, as read at flush time)'
            cand --queue-dir 'Queue directory [default: /var/spool/postie for root, else $XDG_STATE_HOME/postie/queue]'
        }
        &'postie;queue;init'= {
            cand --config 'Config file for the queue directory and queue_max_age. A flush sends each message with the config it was queued with (its --config, else POSTIE_CONFIG or the default path, as read at flush time)'
            cand --queue-dir 'Queue directory [default: /var/spool/postie for root, else $XDG_STATE_HOME/postie/queue]'
        }
        &'postie;queue;retry'= {
            cand --config 'Config file for the queue directory and queue_max_age. A flush sends each message with the config it was queued with (its --config, else POSTIE_CONFIG or the default path, as read at flush time)'
            cand --queue-dir 'Queue directory [default: /var/spool/postie for root, else $XDG_STATE_HOME/postie/queue]'
        }
        &'postie;config'= {
            cand -V 'Print version'
            cand --version 'Print version'
            cand example 'Print a commented example config with every key (save it as ~/.config/postie/config.toml)'
        }
        &'postie;config;example'= {
        }
        &'postie;oauth2'= {
            cand --account 'The account [default: the config''s default account]'
            cand --config 'Config file'
            cand -V 'Print version'
            cand --version 'Print version'
            cand login 'Sign in: print a URL and a code to enter there (device flow), or with --browser a URL to open (always for google); the token is stored in the state directory'
            cand status 'Show the account, provider, scopes and when the access token expires (never a token)'
        }
        &'postie;oauth2;login'= {
            cand --account 'The account [default: the config''s default account]'
            cand --config 'Config file'
            cand --browser 'Sign in in a browser on this machine (authorization code with PKCE and a redirect to 127.0.0.1) instead of entering a code'
        }
        &'postie;oauth2;status'= {
            cand --account 'The account [default: the config''s default account]'
            cand --config 'Config file'
        }
        &'postie;dkim'= {
            cand -V 'Print version'
            cand --version 'Print version'
            cand keygen 'Write a new private key (mode 0600, never over an existing file) and print the TXT record to publish at SELECTOR._domainkey.DOMAIN, with the config lines on stderr'
        }
        &'postie;dkim;keygen'= {
            cand --selector 'The selector: the name of this key under the domain (e.g. the month, 2026-12)'
            cand --domain 'The domain the key signs for (d=), the From domain or a parent of it'
            cand --algorithm 'Key type; rsa where in doubt'
            cand --bits 'RSA key size in bits, 2048 to 8192 (DNS TXT records over about 4096 bits are unwieldy) [default: 2048]; not for ed25519, whose keys have one size'
            cand --key-file 'Where to write the private key [default: SELECTOR.private in the current directory]'
        }
    ]
    $completions[$command]
}
