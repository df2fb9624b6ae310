"""Live capture to prediction: sources, the session clock, the streaming extractors
(ASR, acoustic, face, text), the word-aligned sliding window, the pipeline that owns the
threads and the tick, and the thread-safe prediction store that the dashboard reads.

Data flows one way: capture -> extract -> align -> model -> store. Only `realtime.clock`
reads the wall clock; every other module carries timestamps (float seconds since the
session start, named ``*_s``) with the data.
"""
