#!/usr/bin/env bash
# Runs the beanstalk door's differential tests: tests/beanstalk/differential.py (greenstalk
# and raw-socket scenarios), tests/beanstalk/differential.js (jackd and fivebeans, Node clients),
# tests/beanstalk/differential.rb (beaneater, a Ruby client) and
# tests/beanstalk/differential.php (pheanstalk, a PHP client), each against Debian's beanstalkd
# and against the given queuehub binary, every reply compared. Installs greenstalk
# (tests/beanstalk/requirements.txt) when missing and jackd (npm ci); beanstalkd, ruby,
# ruby-beaneater, php-cli and php-pda-pheanstalk must be installed (.ci/run installs them from
# Debian's packages). Exits non-zero if any reply differs.
#
#   .ci/beanstalk-differential.sh path/to/queuehub
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bin="$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"

if ! command -v beanstalkd >/dev/null 2>&1; then
  echo "beanstalk-differential: beanstalkd is not installed (apt-get install beanstalkd)" >&2
  exit 2
fi
if ! ruby -e 'require "beaneater"' >/dev/null 2>&1; then
  echo "beanstalk-differential: ruby and beaneater are not installed (apt-get install ruby ruby-beaneater)" >&2
  exit 2
fi
if ! php -r 'require "Pheanstalk/autoload.php";' >/dev/null 2>&1; then
  echo "beanstalk-differential: php and pheanstalk are not installed (apt-get install php-cli php-pda-pheanstalk)" >&2
  exit 2
fi
if ! python3 -c "import greenstalk" >/dev/null 2>&1; then
  PIP_ROOT_USER_ACTION=ignore python3 -m pip install -q -r "$root/tests/beanstalk/requirements.txt"
fi

timeout 600 python3 "$root/tests/beanstalk/differential.py" --queuehub "$bin" \
  --beanstalkd "$(command -v beanstalkd)"

(cd "$root/tests/beanstalk" && npm ci --no-audit --no-fund --loglevel=error)
(cd "$root/tests/beanstalk" && timeout 300 node differential.js --queuehub "$bin" \
  --beanstalkd "$(command -v beanstalkd)")

timeout 300 ruby "$root/tests/beanstalk/differential.rb" --queuehub "$bin" \
  --beanstalkd "$(command -v beanstalkd)"

timeout 300 php "$root/tests/beanstalk/differential.php" --queuehub "$bin" \
  --beanstalkd "$(command -v beanstalkd)"
