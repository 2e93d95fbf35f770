#!/usr/bin/env python3
"""rr (examples/nextcloud, 2 workers) serving an install of tests/nextcloud/install.sh on
PostgreSQL or MariaDB; 4 clients ask for the OCS capabilities for 40 s; the database is
restarted after 2 s. Prints how many requests failed and when.

    bench/nextcloud/db_restart.py ENV_FILE "RESTART COMMAND"
    bench/nextcloud/db_restart.py /srv/nc-pg/rr-nextcloud-test.env "pg_ctlcluster 15 main restart"
    bench/nextcloud/db_restart.py /srv/nc-my/rr-nextcloud-test.env "/etc/init.d/mariadb restart"
"""
import base64, os, subprocess, sys, threading, time, urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
env = dict(l.strip().split("=", 1) for l in open(sys.argv[1]) if "=" in l and not l.startswith("#"))
restart = sys.argv[2]
port = 18891
rr = subprocess.Popen(["php", "-d", "extension=/work/main/target/release/rr.so", "-d", "apc.enable_cli=1",
    "-d", "opcache.enable_cli=1", ROOT + "/examples/nextcloud/worker.php"],
    env=dict(os.environ, RR_ADDRESS=f"127.0.0.1:{port}", RR_NUM_WORKERS="2", NEXTCLOUD_ROOT=env["RR_NEXTCLOUD_ROOT"]),
    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
time.sleep(4)
auth = base64.b64encode(f"admin:{env['RR_NC_ADMIN_APP_PASSWORD']}".encode()).decode()
url = f"http://127.0.0.1:{port}/ocs/v2.php/cloud/capabilities?format=json"
start = time.time(); fails = []; total = [0]; lock = threading.Lock()
def client():
    while time.time() - start < 40:
        req = urllib.request.Request(url, headers={"Authorization": "Basic " + auth, "OCS-APIRequest": "true"})
        t = time.time() - start
        try:
            code = urllib.request.urlopen(req, timeout=30).status
        except urllib.error.HTTPError as e:
            code = e.code
        except Exception as e:
            code = str(e)[:40]
        with lock:
            total[0] += 1
            if code != 200:
                fails.append((round(t, 2), code))
threads = [threading.Thread(target=client) for _ in range(4)]
[t.start() for t in threads]
time.sleep(2)
t0 = time.time() - start
subprocess.run(restart, shell=True, check=True, stdout=subprocess.DEVNULL)
print(f"database restarted at {t0:.2f}-{time.time()-start:.2f}s")
[t.join() for t in threads]
rr.terminate(); rr.wait()
print(f"{total[0]} requests, {len(fails)} failed")
if fails:
    print(f"failures from {fails[0][0]}s to {fails[-1][0]}s:", sorted(set(c for _, c in fails), key=str))
