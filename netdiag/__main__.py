from netdiag.cli import app

app()
