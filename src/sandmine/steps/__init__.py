"""One module per DVC stage: read the stage's inputs, call the modules, write its outputs.

Stage scripts in `stages/` parse paths and params and call exactly one of these; each DVC stage
depends on its own module here (tests/test_dvc_yaml.py checks the dependencies).
"""
