"""Models sampled or trained with physampler, and their data sets (installed as ``physampler.models``).

Data sets are generated, never downloaded.
"""
