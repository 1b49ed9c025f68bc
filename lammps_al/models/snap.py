"""Linear and quadratic SNAP on the model protocol (:mod:`lammps_al.models.registry`).

LAMMPS calls a model once per force evaluation on every rank, for that rank's atoms, as
``model(elems, descriptors, beta, energy)``: ``elems`` (n,) int32 element indices, ``descriptors``
(n, d) float64 bispectrum components, and two outputs to fill completely, ``beta`` (n, d) = dE_i/dB_i
and ``energy`` (n,) the per-atom energies in eV. The arrays are views of C memory, valid only during
the call.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lammps_al.core.errors import PotentialError
from lammps_al.core.potential import COEFFICIENTS, Potential
from lammps_al.models.registry import Model


def _coefficient_array(potential: Potential, width: int, what: str) -> np.ndarray:
    c = np.atleast_2d(potential.coefficients)
    want = (len(potential.elements), width)
    if c.shape != want:
        raise PotentialError(f"{what} coefficients have shape {c.shape}, expected {want} ({len(potential.elements)} "
                             f"element(s) x {width})")
    return c


class LinearSNAP(Model):
    """Linear SNAP: E_i = beta0[e_i] + beta[e_i] . B_i, per element e.

    Parameters
    ----------
    coefficients : array (n_elements, 1 + n_descriptors)
        Per element, the constant energy (eV) first, then the coefficients of B_1..B_d (eV).
    """

    kind = "linear"

    def __init__(self, coefficients: np.ndarray):
        coefficients = np.ascontiguousarray(np.atleast_2d(np.asarray(coefficients, dtype=np.float64)))
        if coefficients.shape[1] < 2:
            raise PotentialError(f"linear SNAP needs at least one descriptor coefficient per element, got shape "
                                 f"{coefficients.shape}")
        self.coefficients = coefficients
        self.bias = coefficients[:, 0].copy()
        self.weights = coefficients[:, 1:].copy()
        self.n_elements, self.n_descriptors = self.weights.shape
        self.n_params = self.n_descriptors + 1

    @classmethod
    def from_potential(cls, potential: Potential) -> "LinearSNAP":
        if potential.descriptor.quadraticflag:
            raise PotentialError("a linear SNAP potential must have descriptor quadraticflag 0")
        return cls(_coefficient_array(potential, 1 + potential.descriptor.n_descriptors, "linear SNAP"))

    @classmethod
    def descriptor_settings(cls, settings):
        return settings.with_quadratic(False)

    def arrays(self) -> dict[str, np.ndarray]:
        return {COEFFICIENTS: self.coefficients}

    def energies(self, elems: np.ndarray, descriptors: np.ndarray) -> np.ndarray:
        if self.n_elements == 1:
            return descriptors @ self.weights[0] + self.bias[0]
        return np.einsum("ij,ij->i", descriptors, self.weights[elems]) + self.bias[elems]

    def gradients(self, elems: np.ndarray, descriptors: np.ndarray) -> np.ndarray:
        return self.weights[elems] if self.n_elements > 1 else np.broadcast_to(self.weights[0], descriptors.shape)

    def features(self, descriptors: np.ndarray) -> np.ndarray:
        """The features energies are linear in, per atom: [1, B]."""
        return np.hstack([np.ones((len(descriptors), 1)), descriptors])

    def force_features(self, elems, descriptors, gradients):
        return _force_features(elems, gradients, self.n_elements, self.n_params, lambda i, g: g)

    @classmethod
    def from_mliap_model_file(cls, path: str | Path) -> "LinearSNAP":
        """Read an ML-IAP ``.mliap.model`` (or ``.snapcoeff``) linear coefficient file.

        The format: comment lines (``#``) and blank lines, then ``nelements ncoeff``, then for each
        element either a header line ``Elem radius weight`` (snapcoeff) or nothing (mliap), then
        ``ncoeff`` numbers, one per line.
        """
        path = Path(path)
        try:
            text = path.read_text()
        except OSError as exc:
            raise PotentialError(f"cannot read coefficient file {path}: {exc.strerror}") from exc
        except UnicodeDecodeError:
            raise PotentialError(f"{path} is not a text coefficient file") from None
        lines = [(n, line.split("#")[0].split()) for n, line in enumerate(text.splitlines(), 1)]
        lines = [(n, toks) for n, toks in lines if toks]
        if not lines:
            raise PotentialError(f"{path} is empty: expected 'nelements ncoeff' then the coefficients.")
        n, head = lines[0]
        try:
            n_elements, n_coeff = int(head[0]), int(head[1])
            if n_elements < 1 or n_coeff < 2:
                raise ValueError
        except (ValueError, IndexError):
            raise PotentialError(f"{path}:{n}: expected 'nelements ncoeff' (positive integers), got "
                                 f"{' '.join(head)!r}") from None
        rows = lines[1:]
        coeffs = np.empty((n_elements, n_coeff))
        i = 0
        for e in range(n_elements):
            if i < len(rows) and len(rows[i][1]) >= 2:  # snapcoeff element header 'Ta 0.5 1'
                i += 1
            for c in range(n_coeff):
                if i >= len(rows):
                    raise PotentialError(f"{path}: ended after {e * n_coeff + c} coefficients, "
                                         f"expected {n_elements * n_coeff} ({n_elements} x {n_coeff}).")
                n, toks = rows[i]
                try:
                    coeffs[e, c] = float(toks[0])
                except ValueError:
                    raise PotentialError(f"{path}:{n}: {toks[0]!r} is not a number.") from None
                if not np.isfinite(coeffs[e, c]):
                    raise PotentialError(f"{path}:{n}: coefficient {toks[0]!r} is not finite.")
                i += 1
        return cls(coeffs)


def quadratic_features(descriptors: np.ndarray) -> np.ndarray:
    """compute snap's quadratic columns: for i <= j, 0.5*B_i^2 on the diagonal and B_i*B_j above it."""
    n, d = descriptors.shape
    q = np.empty((n, d * (d + 1) // 2))
    start = 0
    for i in range(d):  # block i: B_i * B_i..B_d (row-major upper triangle), ~10x faster than fancy indexing
        stop = start + d - i
        np.multiply(descriptors[:, i:i + 1], descriptors[:, i:], out=q[:, start:stop])
        q[:, start] *= 0.5
        start = stop
    return q


def _force_features(elems, gradients, n_elements: int, n_params: int, chain) -> np.ndarray:
    """J_j = -sum_i dphi_i/dr_j, blocked by the element of i: (n, 3, n_elements * n_params); ``chain(i, g)`` turns
    g = dB_i/dr_j (n, 3, d) into dphi_i/dr_j without the constant feature."""
    grad = np.asarray(gradients)
    n = grad.shape[1]
    out = np.zeros((n, 3, n_elements * n_params))
    for i in range(grad.shape[0]):
        e = int(elems[i])
        out[:, :, e * n_params + 1:(e + 1) * n_params] -= chain(i, grad[i])
    return out


class QuadraticSNAP(Model):
    """Quadratic SNAP: E_i = beta0 + beta . B_i + 1/2 B_i^T M B_i, per element.

    Parameters
    ----------
    coefficients : array (n_elements, 1 + d + d(d+1)/2)
        Per element: the constant (eV), the d linear coefficients, then the upper triangle of M in compute
        snap's order (row-major, i <= j), the same layout as a quadratic ``.snapcoeff`` file.
    """

    kind = "quadratic"

    def __init__(self, coefficients: np.ndarray, n_descriptors: int):
        coefficients = np.atleast_2d(np.asarray(coefficients, dtype=np.float64))
        d = int(n_descriptors)
        if coefficients.shape[1] != 1 + d + d * (d + 1) // 2:
            raise PotentialError(f"quadratic SNAP with {d} descriptors needs {1 + d + d * (d + 1) // 2} "
                                 f"coefficients per element, got {coefficients.shape[1]}")
        self.coefficients = np.ascontiguousarray(coefficients)
        self.n_elements = coefficients.shape[0]
        self.n_descriptors = d
        self.n_params = coefficients.shape[1]
        self.bias = coefficients[:, 0].copy()
        self.linear = coefficients[:, 1:1 + d].copy()
        iu, ju = np.triu_indices(d)
        self.matrix = np.zeros((self.n_elements, d, d))
        for e in range(self.n_elements):
            upper = coefficients[e, 1 + d:]
            self.matrix[e, iu, ju] = upper
            self.matrix[e, ju, iu] = upper

    @classmethod
    def from_potential(cls, potential: Potential) -> "QuadraticSNAP":
        s = potential.descriptor
        if not s.quadraticflag:
            raise PotentialError("a quadratic SNAP potential must have descriptor quadraticflag 1")
        return cls(_coefficient_array(potential, 1 + s.n_features, "quadratic SNAP"), s.n_descriptors)

    @classmethod
    def descriptor_settings(cls, settings):
        return settings.with_quadratic(True)

    def arrays(self) -> dict[str, np.ndarray]:
        return {COEFFICIENTS: self.coefficients}

    def features(self, descriptors: np.ndarray) -> np.ndarray:
        return np.hstack([np.ones((len(descriptors), 1)), descriptors, quadratic_features(descriptors)])

    def force_features(self, elems, descriptors, gradients):
        B = np.asarray(descriptors)

        def chain(i, g):          # g: (n, 3, d) = dB_i/dr_j  ->  (n, 3, d + d(d+1)/2) = dphi_i/dr_j
            b = B[i]
            d = len(b)
            quad = np.empty(g.shape[:2] + (d * (d + 1) // 2,))
            start = 0
            for k in range(d):   # the block of B_k * B_k..B_d (0.5 B_k^2 first): compute snap's order
                stop = start + d - k
                quad[..., start:stop] = g[..., k:k + 1] * b[k:] + b[k] * g[..., k:]
                quad[..., start] *= 0.5
                start = stop
            return np.concatenate([g, quad], axis=-1)

        return _force_features(elems, gradients, self.n_elements, self.n_params, chain)

    def energies(self, elems: np.ndarray, descriptors: np.ndarray) -> np.ndarray:
        if self.n_elements == 1:
            MB = descriptors @ self.matrix[0]
            return self.bias[0] + descriptors @ self.linear[0] + 0.5 * np.einsum("ij,ij->i", MB, descriptors)
        MB = np.einsum("ijk,ik->ij", self.matrix[elems], descriptors)
        return (self.bias[elems] + np.einsum("ij,ij->i", descriptors, self.linear[elems])
                + 0.5 * np.einsum("ij,ij->i", MB, descriptors))

    def gradients(self, elems: np.ndarray, descriptors: np.ndarray) -> np.ndarray:
        if self.n_elements == 1:
            return self.linear[0] + descriptors @ self.matrix[0]
        return self.linear[elems] + np.einsum("ijk,ik->ij", self.matrix[elems], descriptors)
