# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_postie_global_optspecs
    string join \n to= c/cc= b/bcc= f/from= s/subject= r/reply-to= H/header= body= body-file= html= no-text-alternative a/attach= inline= message= t/read-recipients full-name= server= port= helo= timeout= partial tls= ca-file= client-cert= client-key= insecure user= password-cmd= auth= allow-plaintext-auth sendmail config= account= dry-run v/verbose timing quit-after= capabilities json test-message tls-fingerprint= mx resolver= queue no-queue queue-dir= notify= ret= envid= 4/ipv4 6/ipv6 h/help help-long V/version
end

function __fish_postie_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_postie_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_postie_using_subcommand
    set -l cmd (__fish_postie_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c postie -n "__fish_postie_needs_command" -l to -d 'Add To: recipients (repeatable; comma-separated lists allowed)' -r -f
complete -c postie -n "__fish_postie_needs_command" -s c -l cc -d 'Add Cc: recipients (repeatable; comma-separated lists allowed)' -r -f
complete -c postie -n "__fish_postie_needs_command" -s b -l bcc -d 'Add blind recipients: envelope only, never written into a header' -r -f
complete -c postie -n "__fish_postie_needs_command" -s f -l from -d 'Sender address, for the From: header and the envelope ("Name <addr>" allowed)' -r -f
complete -c postie -n "__fish_postie_needs_command" -s s -l subject -d 'Subject line (UTF-8; encoded as RFC 2047 requires)' -r
complete -c postie -n "__fish_postie_needs_command" -s r -l reply-to -d 'Reply-To: address(es)' -r -f
complete -c postie -n "__fish_postie_needs_command" -s H -l header -d 'Extra header, as \'Name: value\' (repeatable; CR or LF in it is refused)' -r
complete -c postie -n "__fish_postie_needs_command" -l body -d 'Message body text (instead of standard input)' -r
complete -c postie -n "__fish_postie_needs_command" -l body-file -d 'Read the body from a file (\'-\' reads standard input)' -r -F
complete -c postie -n "__fish_postie_needs_command" -l html -d 'Add an HTML alternative to the text body, read from this file' -r -F
complete -c postie -n "__fish_postie_needs_command" -s a -l attach -d 'Attach a file (repeatable; \'-\' reads standard input); append \';name=FILE\' or \';type=MIME/TYPE\' to set its name or type' -r -F
complete -c postie -n "__fish_postie_needs_command" -l inline -d 'Embed an image for the HTML part (repeatable); reference it as cid:FILENAME or cid:ID' -r -F
complete -c postie -n "__fish_postie_needs_command" -l message -d 'Send this ready-made RFC 5322 message instead of composing one (\'-\' reads stdin; repeatable)' -r -F
complete -c postie -n "__fish_postie_needs_command" -l full-name -d 'Display name for a From: header that postie adds to a --message' -r
complete -c postie -n "__fish_postie_needs_command" -l server -d 'SMTP server: HOST, HOST:PORT, smtp://HOST[:PORT] or smtps://HOST[:PORT]' -r -f -a "(__fish_print_hostnames)"
complete -c postie -n "__fish_postie_needs_command" -l port -d 'Server port [default: 465 for smtps:// or --tls implicit, else 587]' -r
complete -c postie -n "__fish_postie_needs_command" -l helo -d 'Name to announce in EHLO [default: this machine\'s host name]' -r -f -a "(__fish_print_hostnames)"
complete -c postie -n "__fish_postie_needs_command" -l timeout -d 'Seconds to wait for the connection and for each server reply' -r
complete -c postie -n "__fish_postie_needs_command" -l tls -d 'TLS mode [default: implicit on port 465, opportunistic for loopback, else starttls]' -r -f -a "starttls\t'Upgrade with STARTTLS; fail if the server does not offer it'
implicit\t'TLS from the first byte (SMTPS)'
opportunistic\t'STARTTLS when the server offers it, plain text otherwise'
none\t'Plain text only'"
complete -c postie -n "__fish_postie_needs_command" -l ca-file -d 'Trust the CA certificates in this PEM file (in addition to the system\'s)' -r -F
complete -c postie -n "__fish_postie_needs_command" -l client-cert -d 'Client certificate (PEM) to present to the server; needs --client-key' -r -F
complete -c postie -n "__fish_postie_needs_command" -l client-key -d 'Private key (PEM, PKCS#8) for --client-cert; refused unless private to its owner (chmod 600)' -r -F
complete -c postie -n "__fish_postie_needs_command" -l user -d 'User name for SMTP AUTH; the password comes from --password-cmd, POSTIE_PASSWORD or the config' -r
complete -c postie -n "__fish_postie_needs_command" -l password-cmd -d 'Command whose first output line is the password (or OAuth2 token), e.g. \'pass show smtp\'' -r -f -a "(__fish_complete_command)"
complete -c postie -n "__fish_postie_needs_command" -l auth -d 'Authentication mechanism [default: auto: over TLS the first of SCRAM-SHA-256, SCRAM-SHA-1, PLAIN, LOGIN the server offers; without TLS only SCRAM or CRAM-MD5]' -r -f -a "auto\t'Over TLS the first of SCRAM-SHA-256, SCRAM-SHA-1, PLAIN and LOGIN that the server offers (OAUTHBEARER, else XOAUTH2, for an OAuth2 account); without TLS only SCRAM or CRAM-MD5'
plain\t'AUTH PLAIN'
login\t'AUTH LOGIN'
xoauth2\t'AUTH XOAUTH2 (the secret is an OAuth2 access token)'
oauthbearer\t'AUTH OAUTHBEARER, RFC 7628 (the secret is an OAuth2 access token)'
scram-sha-256\t'AUTH SCRAM-SHA-256 (RFC 7677): the password never leaves postie, and the server proves that it knows it'
scram-sha-1\t'AUTH SCRAM-SHA-1 (RFC 5802)'
cram-md5\t'AUTH CRAM-MD5 (RFC 2195): for old servers without TLS'"
complete -c postie -n "__fish_postie_needs_command" -l config -d 'Config file [default: $XDG_CONFIG_HOME/postie/config.toml, then /etc/postie/config.toml]' -r -F
complete -c postie -n "__fish_postie_needs_command" -l account -d 'Use this account from the config file [default: the one whose `from` matches --from, else `default`, else the only one]' -r
complete -c postie -n "__fish_postie_needs_command" -l quit-after -d 'Stop cleanly with QUIT after this stage; `rcpt` tests recipients without sending' -r -f -a "connect\t'The TCP connection (and implicit TLS) is up'
banner\t'The server\'s greeting was read (no EHLO sent)'
first-ehlo\t'The first EHLO was answered (before STARTTLS)'
ehlo\t'The last EHLO was answered: after STARTTLS when TLS is used'
starttls\t'STARTTLS done and EHLO repeated (or skipped when TLS is not used)'
auth\t'AUTH done (or skipped without a user)'
mail\t'MAIL FROM accepted'
rcpt\t'Every RCPT TO answered: tests recipients without sending'
data\t'The message was sent: a whole transaction'"
complete -c postie -n "__fish_postie_needs_command" -l tls-fingerprint -d 'Trust only the certificate with this SHA-256 fingerprint (hex, colons allowed)' -r
complete -c postie -n "__fish_postie_needs_command" -l resolver -d 'Send DNS queries for --mx to this server instead of the system\'s' -r
complete -c postie -n "__fish_postie_needs_command" -l queue-dir -d 'Queue directory [default: /var/spool/postie for root, else $XDG_STATE_HOME/postie/queue]' -r -f -a "(__fish_complete_directories)"
complete -c postie -n "__fish_postie_needs_command" -l notify -d 'Ask for delivery status notifications: never, or any of success,failure,delay (sendmail -N)' -r
complete -c postie -n "__fish_postie_needs_command" -l ret -d 'What a failure report returns of the message: full or hdrs (sendmail -R)' -r
complete -c postie -n "__fish_postie_needs_command" -l envid -d 'An ID the reports quote as Original-Envelope-Id (sendmail -V)' -r
complete -c postie -n "__fish_postie_needs_command" -l no-text-alternative -d 'With --html and no text body: send the HTML alone, without the plain-text copy postie makes of it'
complete -c postie -n "__fish_postie_needs_command" -s t -l read-recipients -d 'With --message: also send to the To, Cc and Bcc (or Resent-*) addresses in its headers'
complete -c postie -n "__fish_postie_needs_command" -l partial -d 'Send to the accepted recipients even if some were refused (they are still reported)'
complete -c postie -n "__fish_postie_needs_command" -l insecure -d 'Do not verify the server\'s certificate (prints a warning). Prefer --ca-file'
complete -c postie -n "__fish_postie_needs_command" -l allow-plaintext-auth -d 'Allow AUTH over an unencrypted connection to a host that is not loopback'
complete -c postie -n "__fish_postie_needs_command" -l sendmail -d 'Take sendmail\'s command line (as when called through a link named sendmail)'
complete -c postie -n "__fish_postie_needs_command" -l dry-run -d 'Print the envelope on stderr and the message on stdout; send nothing'
complete -c postie -n "__fish_postie_needs_command" -s v -l verbose -d 'Show the SMTP dialogue on stderr (-vv adds message headers, -vvv the whole message)'
complete -c postie -n "__fish_postie_needs_command" -l timing -d 'Show how long each reply took, and a summary per stage (implies -v)'
complete -c postie -n "__fish_postie_needs_command" -l capabilities -d 'Report the server\'s EHLO extensions before and after STARTTLS, and its certificate'
complete -c postie -n "__fish_postie_needs_command" -l json -d 'Print what became of each message and recipient as JSON on stdout, even on failure'
complete -c postie -n "__fish_postie_needs_command" -l test-message -d 'Send a generated test message ("postie test DATE", saying which host sent it)'
complete -c postie -n "__fish_postie_needs_command" -l mx -d 'Deliver straight to each recipient domain\'s mail exchangers (MX) on port 25'
complete -c postie -n "__fish_postie_needs_command" -l queue -d 'Keep the message in the queue after a temporary failure (the default in sendmail mode)'
complete -c postie -n "__fish_postie_needs_command" -l no-queue -d 'Never queue: a temporary failure is exit 75 (the default outside sendmail mode)'
complete -c postie -n "__fish_postie_needs_command" -s 4 -l ipv4 -d 'Connect over IPv4 only'
complete -c postie -n "__fish_postie_needs_command" -s 6 -l ipv6 -d 'Connect over IPv6 only'
complete -c postie -n "__fish_postie_needs_command" -s h -l help -d 'Print a one-line summary of each option'
complete -c postie -n "__fish_postie_needs_command" -l help-long -d 'Print each option with its details (man postie has more)'
complete -c postie -n "__fish_postie_needs_command" -s V -l version -d 'Print version'
complete -c postie -n "__fish_postie_needs_command" -a "queue" -d 'List, send, show, drop or retry queued messages; set up the maildrop'
complete -c postie -n "__fish_postie_needs_command" -a "config" -d 'About the config file: print a commented example'
complete -c postie -n "__fish_postie_needs_command" -a "oauth2" -d 'Sign in an OAuth2 account once (its token is then refreshed at each send), or show its token\'s state'
complete -c postie -n "__fish_postie_needs_command" -a "dkim" -d 'Make a DKIM signing key and print the DNS record that publishes it'
complete -c postie -n "__fish_postie_using_subcommand queue; and not __fish_seen_subcommand_from list flush show drop init retry" -l config -d 'Config file for the queue directory and queue_max_age. A flush sends each message with the config it was queued with (its --config, else POSTIE_CONFIG or the default path, as read at flush time)' -r -F
complete -c postie -n "__fish_postie_using_subcommand queue; and not __fish_seen_subcommand_from list flush show drop init retry" -l queue-dir -d 'Queue directory [default: /var/spool/postie for root, else $XDG_STATE_HOME/postie/queue]' -r -f -a "(__fish_complete_directories)"
complete -c postie -n "__fish_postie_using_subcommand queue; and not __fish_seen_subcommand_from list flush show drop init retry" -s V -l version -d 'Print version'
complete -c postie -n "__fish_postie_using_subcommand queue; and not __fish_seen_subcommand_from list flush show drop init retry" -f -a "list" -d 'List queued messages: id, age, sender, recipients, attempts, last error'
complete -c postie -n "__fish_postie_using_subcommand queue; and not __fish_seen_subcommand_from list flush show drop init retry" -f -a "flush" -d 'Try to send every queued message that is due (exponential backoff per message)'
complete -c postie -n "__fish_postie_using_subcommand queue; and not __fish_seen_subcommand_from list flush show drop init retry" -f -a "show" -d 'Show one queued message: its envelope, history and the message itself'
complete -c postie -n "__fish_postie_using_subcommand queue; and not __fish_seen_subcommand_from list flush show drop init retry" -f -a "drop" -d 'Delete one queued message without sending it'
complete -c postie -n "__fish_postie_using_subcommand queue; and not __fish_seen_subcommand_from list flush show drop init retry" -f -a "init" -d 'Create or repair the system spool and its maildrop (root; see MAILDROP)'
complete -c postie -n "__fish_postie_using_subcommand queue; and not __fish_seen_subcommand_from list flush show drop init retry" -f -a "retry" -d 'Move a message from failed/ back into the queue, as new: attempts and age start again; one kept before it could be prepared (sendmail mode) is prepared again with today\'s config'
complete -c postie -n "__fish_postie_using_subcommand queue; and __fish_seen_subcommand_from list" -l config -d 'Config file for the queue directory and queue_max_age. A flush sends each message with the config it was queued with (its --config, else POSTIE_CONFIG or the default path, as read at flush time)' -r -F
complete -c postie -n "__fish_postie_using_subcommand queue; and __fish_seen_subcommand_from list" -l queue-dir -d 'Queue directory [default: /var/spool/postie for root, else $XDG_STATE_HOME/postie/queue]' -r -f -a "(__fish_complete_directories)"
complete -c postie -n "__fish_postie_using_subcommand queue; and __fish_seen_subcommand_from list" -l json -d 'Print JSON for scripts'
complete -c postie -n "__fish_postie_using_subcommand queue; and __fish_seen_subcommand_from list" -l failed -d 'List the messages given up on (in failed/) instead, with why'
complete -c postie -n "__fish_postie_using_subcommand queue; and __fish_seen_subcommand_from flush" -l config -d 'Config file for the queue directory and queue_max_age. A flush sends each message with the config it was queued with (its --config, else POSTIE_CONFIG or the default path, as read at flush time)' -r -F
complete -c postie -n "__fish_postie_using_subcommand queue; and __fish_seen_subcommand_from flush" -l queue-dir -d 'Queue directory [default: /var/spool/postie for root, else $XDG_STATE_HOME/postie/queue]' -r -f -a "(__fish_complete_directories)"
complete -c postie -n "__fish_postie_using_subcommand queue; and __fish_seen_subcommand_from flush" -l now -d 'Try every message now, ignoring the backoff'
complete -c postie -n "__fish_postie_using_subcommand queue; and __fish_seen_subcommand_from flush" -s v -l verbose -d 'Say what was sent, and show the SMTP dialogue with -vv'
complete -c postie -n "__fish_postie_using_subcommand queue; and __fish_seen_subcommand_from show" -l config -d 'Config file for the queue directory and queue_max_age. A flush sends each message with the config it was queued with (its --config, else POSTIE_CONFIG or the default path, as read at flush time)' -r -F
complete -c postie -n "__fish_postie_using_subcommand queue; and __fish_seen_subcommand_from show" -l queue-dir -d 'Queue directory [default: /var/spool/postie for root, else $XDG_STATE_HOME/postie/queue]' -r -f -a "(__fish_complete_directories)"
complete -c postie -n "__fish_postie_using_subcommand queue; and __fish_seen_subcommand_from drop" -l config -d 'Config file for the queue directory and queue_max_age. A flush sends each message with the config it was queued with (its --config, else POSTIE_CONFIG or the default path, as read at flush time)' -r -F
complete -c postie -n "__fish_postie_using_subcommand queue; and __fish_seen_subcommand_from drop" -l queue-dir -d 'Queue directory [default: /var/spool/postie for root, else $XDG_STATE_HOME/postie/queue]' -r -f -a "(__fish_complete_directories)"
complete -c postie -n "__fish_postie_using_subcommand queue; and __fish_seen_subcommand_from init" -l config -d 'Config file for the queue directory and queue_max_age. A flush sends each message with the config it was queued with (its --config, else POSTIE_CONFIG or the default path, as read at flush time)' -r -F
complete -c postie -n "__fish_postie_using_subcommand queue; and __fish_seen_subcommand_from init" -l queue-dir -d 'Queue directory [default: /var/spool/postie for root, else $XDG_STATE_HOME/postie/queue]' -r -f -a "(__fish_complete_directories)"
complete -c postie -n "__fish_postie_using_subcommand queue; and __fish_seen_subcommand_from retry" -l config -d 'Config file for the queue directory and queue_max_age. A flush sends each message with the config it was queued with (its --config, else POSTIE_CONFIG or the default path, as read at flush time)' -r -F
complete -c postie -n "__fish_postie_using_subcommand queue; and __fish_seen_subcommand_from retry" -l queue-dir -d 'Queue directory [default: /var/spool/postie for root, else $XDG_STATE_HOME/postie/queue]' -r -f -a "(__fish_complete_directories)"
complete -c postie -n "__fish_postie_using_subcommand config; and not __fish_seen_subcommand_from example" -s V -l version -d 'Print version'
complete -c postie -n "__fish_postie_using_subcommand config; and not __fish_seen_subcommand_from example" -f -a "example" -d 'Print a commented example config with every key (save it as ~/.config/postie/config.toml)'
complete -c postie -n "__fish_postie_using_subcommand oauth2; and not __fish_seen_subcommand_from login status" -l account -d 'The account [default: the config\'s default account]' -r
complete -c postie -n "__fish_postie_using_subcommand oauth2; and not __fish_seen_subcommand_from login status" -l config -d 'Config file' -r -F
complete -c postie -n "__fish_postie_using_subcommand oauth2; and not __fish_seen_subcommand_from login status" -s V -l version -d 'Print version'
complete -c postie -n "__fish_postie_using_subcommand oauth2; and not __fish_seen_subcommand_from login status" -f -a "login" -d 'Sign in: print a URL and a code to enter there (device flow), or with --browser a URL to open (always for google); the token is stored in the state directory'
complete -c postie -n "__fish_postie_using_subcommand oauth2; and not __fish_seen_subcommand_from login status" -f -a "status" -d 'Show the account, provider, scopes and when the access token expires (never a token)'
complete -c postie -n "__fish_postie_using_subcommand oauth2; and __fish_seen_subcommand_from login" -l account -d 'The account [default: the config\'s default account]' -r
complete -c postie -n "__fish_postie_using_subcommand oauth2; and __fish_seen_subcommand_from login" -l config -d 'Config file' -r -F
complete -c postie -n "__fish_postie_using_subcommand oauth2; and __fish_seen_subcommand_from login" -l browser -d 'Sign in in a browser on this machine (authorization code with PKCE and a redirect to 127.0.0.1) instead of entering a code'
complete -c postie -n "__fish_postie_using_subcommand oauth2; and __fish_seen_subcommand_from status" -l account -d 'The account [default: the config\'s default account]' -r
complete -c postie -n "__fish_postie_using_subcommand oauth2; and __fish_seen_subcommand_from status" -l config -d 'Config file' -r -F
complete -c postie -n "__fish_postie_using_subcommand dkim; and not __fish_seen_subcommand_from keygen" -s V -l version -d 'Print version'
complete -c postie -n "__fish_postie_using_subcommand dkim; and not __fish_seen_subcommand_from keygen" -f -a "keygen" -d 'Write a new private key (mode 0600, never over an existing file) and print the TXT record to publish at SELECTOR._domainkey.DOMAIN, with the config lines on stderr'
complete -c postie -n "__fish_postie_using_subcommand dkim; and __fish_seen_subcommand_from keygen" -l selector -d 'The selector: the name of this key under the domain (e.g. the month, 2026-12)' -r
complete -c postie -n "__fish_postie_using_subcommand dkim; and __fish_seen_subcommand_from keygen" -l domain -d 'The domain the key signs for (d=), the From domain or a parent of it' -r
complete -c postie -n "__fish_postie_using_subcommand dkim; and __fish_seen_subcommand_from keygen" -l algorithm -d 'Key type; rsa where in doubt' -r -f -a "rsa\t'RSA (rsa-sha256), which every verifier knows'
ed25519\t'Ed25519 (ed25519-sha256, RFC 8463): short, but not every verifier knows it yet'"
complete -c postie -n "__fish_postie_using_subcommand dkim; and __fish_seen_subcommand_from keygen" -l bits -d 'RSA key size in bits, 2048 to 8192 (DNS TXT records over about 4096 bits are unwieldy) [default: 2048]; not for ed25519, whose keys have one size' -r
complete -c postie -n "__fish_postie_using_subcommand dkim; and __fish_seen_subcommand_from keygen" -l key-file -d 'Where to write the private key [default: SELECTOR.private in the current directory]' -r -F
