"""Trained experts: RL trainers (PPO, SAC) for domains without scripted experts, and their store on disk.

    gatolab experts train --env Breakout-MinAtar      # trains, evaluates against random, saves experts/<task>/
    gatolab experts list                              # what is trained, with its measured returns
"""
