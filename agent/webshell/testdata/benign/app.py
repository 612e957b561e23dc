import sqlite3

from flask import Flask, g, redirect, render_template, request, url_for

app = Flask(__name__)
DB = "/var/lib/app/guestbook.db"


def db():
    if "db" not in g:
        g.db = sqlite3.connect(DB)
    return g.db


@app.route("/", methods=["GET", "POST"])
def index():
    if request.method == "POST":
        name = request.form.get("name", "")[:50]
        text = request.form.get("text", "")[:500]
        db().execute("INSERT INTO entries(name, text) VALUES (?, ?)", (name, text))
        db().commit()
        return redirect(url_for("index"))
    rows = db().execute("SELECT name, text FROM entries ORDER BY id DESC LIMIT 50").fetchall()
    return render_template("index.html", rows=rows)
