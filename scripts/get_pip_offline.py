"""Stand-in for the get-pip script that ansible-test downloads from a host CI cannot reach.

ansible-test looks for it in ~/.ansible/test/cache/ before downloading. It bootstraps
pip from the interpreter's own ensurepip, then installs what ansible-test asked for
from the package index.
"""
import subprocess
import sys

DROP = {"install", "--no-setuptools", "--no-wheel"}

subprocess.check_call([sys.executable, "-m", "ensurepip", "--default-pip"])
subprocess.check_call([sys.executable, "-m", "pip", "install", *(a for a in sys.argv[1:] if a not in DROP)])
