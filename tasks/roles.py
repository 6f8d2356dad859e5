"""What each input position of a task's sequence is: key, value, noise, query or filler.

For coefficient maps (axes marked by role) and for selectivity (the share of coefficient mass on
noise tokens). Defined from each generator's layout (its docstring): the recall tasks alternate
key, value from position 0, noise chunks use the last noise_vocab_size token ids, and the scored
positions are the queries; MQAR opens with num_kv_pairs key-value pairs, and the rest is filler
except the scored query positions.
"""

import numpy as np

from .common import IGNORE

ROLES = ("key", "value", "noise", "query", "filler")
KEY, VALUE, NOISE, QUERY, FILLER = range(len(ROLES))
DEFINED = ("icr", "noisy_icr", "mqar")
# Tasks whose sequences can hold noise tokens, and whether these parameters put any in.
NOISY = {"noisy_icr": lambda params: params["frac_noise"] > 0}


def has_noise(task: str, params: dict) -> bool:
    """Whether the task's sequences hold noise tokens (role NOISE) with these parameters."""
    return task in NOISY and NOISY[task](params)


def token_roles(task: str, params: dict, inputs: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """(N, T) role codes (indices into ROLES) of the positions of `inputs` with scored `targets`."""
    if task not in DEFINED:
        raise ValueError(f"task={task!r}: token roles are defined for {', '.join(DEFINED)}")
    T = inputs.shape[1]
    alternating = np.where(np.arange(T) % 2 == 0, KEY, VALUE)
    if task == "mqar":
        roles = np.where(np.arange(T) < 2 * params["num_kv_pairs"], alternating, FILLER)
    else:
        roles = alternating
    roles = np.broadcast_to(roles, inputs.shape).copy()
    if task == "noisy_icr":
        roles[inputs >= params["vocab_size"] - params["noise_vocab_size"]] = NOISE
    roles[targets != IGNORE] = QUERY
    return roles
