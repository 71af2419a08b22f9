"""Train-and-compare evaluation: does a selection train a better model than random data of the same size?"""
