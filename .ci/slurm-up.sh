#!/usr/bin/env bash
# Install (Debian packages) and start a single-node SLURM with accounting: munge, MariaDB, slurmdbd,
# slurmctld, slurmd, each started by hand (no systemd). Root only; a second call finds it up and exits.
# Prints one line per stage; exits non-zero with the reason (and the daemon's log tail) if a stage fails.
set -euo pipefail

# shellcheck source=.ci/slurm-lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/slurm-lib.sh"

[ "$(id -u)" = 0 ] || { echo "slurm-up: must run as root (it installs packages and starts daemons)"; exit 1; }
if command -v sacct >/dev/null && sinfo -h -o %T 2>/dev/null | grep -qE 'idle|mix|alloc' && sacct -n -X >/dev/null 2>&1; then
  say "SLURM already up: $(sinfo -h -o '%N %T %c CPUs')"; exit 0
fi

PACKAGES=(munge slurmctld slurmd slurm-client slurmdbd mariadb-server)
if ! dpkg -s "${PACKAGES[@]}" >/dev/null 2>&1; then
  say "installing ${PACKAGES[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null
  apt-get install -y -q --no-install-recommends "${PACKAGES[@]}" >/dev/null
fi

HOST=$(hostname -s)
CPUS=${LW_SLURM_CPUS:-16}       # declared, not real: config_overrides lets the node claim more than it has
MEMORY=${LW_SLURM_MEMORY_MB:-4000}
mkdir -p /etc/slurm /var/log/slurm /var/spool/slurmctld /var/spool/slurmd /run/munge /run/mysqld /run/slurm
chown slurm:slurm /var/log/slurm /var/spool/slurmctld
chown munge:munge /run/munge
chown mysql:mysql /run/mysqld

# munge: one key, the daemon as the munge user.
[ -s /etc/munge/munge.key ] || { dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none; }
chown munge:munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key
if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
  detached /var/log/slurm/munged.log runuser -u munge -- /usr/sbin/munged --force
  wait_for 15 munged bash -c 'munge -n | unmunge'
fi
say "munge up"

# MariaDB with the accounting database's user.
if ! mysqladmin ping >/dev/null 2>&1; then
  [ -d /var/lib/mysql/mysql ] || mariadb-install-db --user=mysql >/dev/null
  detached /var/log/slurm/mariadb.log mariadbd --user=mysql
  wait_for 60 mariadb mysqladmin ping
fi
mysql -e "CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY 'slurm';
          GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost'; FLUSH PRIVILEGES;"
say "mariadb up"

cat > /etc/slurm/slurmdbd.conf <<EOF
AuthType=auth/munge
DbdHost=localhost
SlurmUser=slurm
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=slurm
StoragePass=slurm
StorageLoc=slurm_acct_db
LogFile=/var/log/slurm/slurmdbd.log
PidFile=/run/slurm/slurmdbd.pid
EOF
chown slurm:slurm /etc/slurm/slurmdbd.conf && chmod 600 /etc/slurm/slurmdbd.conf

cat > /etc/slurm/slurm.conf <<EOF
ClusterName=lw
SlurmctldHost=$HOST
AuthType=auth/munge
SlurmUser=slurm
SlurmdUser=root
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
JobCompType=jobcomp/none
MpiDefault=none
ReturnToService=2
SlurmdParameters=config_overrides
JobRequeue=1
MinJobAge=600
SchedulerParameters=sched_interval=5
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurm/slurmctld.pid
SlurmdPidFile=/run/slurm/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
NodeName=$HOST CPUs=$CPUS RealMemory=$MEMORY State=UNKNOWN
PartitionName=debug Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
EOF

pgrep -x slurmdbd >/dev/null || detached /var/log/slurm/slurmdbd.log slurmdbd -D
wait_for 60 slurmdbd bash -c 'exec 3<>/dev/tcp/127.0.0.1/6819'
say "slurmdbd up"
pgrep -x slurmctld >/dev/null || detached /var/log/slurm/slurmctld.log slurmctld -D
wait_for 60 slurmctld scontrol ping
pgrep -x slurmd >/dev/null || detached /var/log/slurm/slurmd.log slurmd -D
wait_for 60 "the node" bash -c "sinfo -h -n '$HOST' -o %T | grep -qE 'idle|mix|alloc'"
say "slurmctld + slurmd up: $(sinfo -h -o '%N %T %c CPUs')"

# Smoke: a job runs and accounting knows about it.
job=$(sbatch --parsable --wrap 'hostname' -o /dev/null | cut -d';' -f1)
wait_for 60 "accounting of smoke job $job" bash -c "sacct -n -X -P -j $job -o State | grep -qx COMPLETED"
say "SLURM up: job $job COMPLETED in sacct"
