# Sends postie's queue every 10 minutes on machines without systemd; where
# systemd runs, postie-flush.timer does it (and this line does nothing).
# A conffile, so it stays after `apt-get remove postie-mta`: then sendmail
# is no longer postie and it does nothing either.
*/10 * * * * root [ -d /run/systemd/system ] || [ "$(readlink -f /usr/sbin/sendmail)" != /usr/bin/postie ] || /usr/bin/postie queue flush >/dev/null 2>&1
