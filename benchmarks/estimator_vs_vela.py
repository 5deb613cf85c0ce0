"""Compare ``sesr estimate`` with Arm's Vela compiler on the same int8 networks.

Writes each estimator layer graph as an int8 TFLite flatbuffer with random weights and one
activation scale, then compiles it with Vela for several accelerators. Prints one Markdown table
row per network and NPU with MACs, NPU cycles, inferences per second and DRAM/SRAM traffic from
both tools.

Needs ``pip install ethos-u-vela`` (tested with 5.2.0); the TFLite file is built with the
flatbuffer classes that Vela ships (``ethosu.vela.tflite``), so TensorFlow is not needed. The
sesr package itself never imports Vela.

    python benchmarks/estimator_vs_vela.py --size 1920x1080 --model sesr-m5 --model fsrcnn \
        --npu ethos-u55-256 --npu ethos-u65-256 --npu ethos-u85-256
"""

from __future__ import annotations

import argparse
import csv
import subprocess
import sys
import tempfile
from pathlib import Path

import flatbuffers
import numpy as np

from estimator import Op, Precision, build_network, estimate, fuse_activations, resolve_npu

try:
    from ethosu.vela.tflite import (ActivationFunctionType, AddOptions, Buffer, BuiltinOperator, BuiltinOptions,
                                    Conv2DOptions, DepthToSpaceOptions, Model, Operator, OperatorCode,
                                    QuantizationParameters, ResizeBilinearOptions, SubGraph, SubOptions, Tensor,
                                    TensorType, TransposeConvOptions)
except ImportError:  # pragma: no cover - the benchmark needs Vela
    sys.exit("this benchmark needs Arm's Vela: pip install ethos-u-vela")

ACTIVATION_SCALE = 1 / 128


class TfliteWriter:
    """Collects tensors, buffers and operators, then serialises one subgraph model."""

    def __init__(self, seed: int = 0) -> None:
        self.builder = flatbuffers.Builder(1 << 20)
        self.rng = np.random.default_rng(seed)
        self.buffers: list[bytes] = [b""]
        self.tensors: list[tuple[str, list[int], int, int, dict]] = []
        self.operators: list[tuple[int, list[int], list[int], int, object]] = []
        self.opcodes: list[int] = []

    def tensor(self, name: str, shape: list[int], dtype: int, data: bytes | None = None,
               scales=(ACTIVATION_SCALE,), axis: int = 0) -> int:
        buffer = 0
        if data is not None:
            self.buffers.append(data)
            buffer = len(self.buffers) - 1
        self.tensors.append((name, shape, dtype, buffer, {"scales": list(scales), "axis": axis}))
        return len(self.tensors) - 1

    def constant_int8(self, name: str, shape: list[int], axis: int = 0) -> int:
        values = self.rng.integers(-100, 100, size=shape, dtype=np.int8)
        count = shape[axis]
        return self.tensor(name, shape, TensorType.TensorType.INT8, values.tobytes(),
                           scales=[0.01] * count, axis=axis)

    def constant_int32(self, name: str, values: np.ndarray, scales=(ACTIVATION_SCALE * 0.01,)) -> int:
        return self.tensor(name, list(values.shape), TensorType.TensorType.INT32,
                           values.astype(np.int32).tobytes(), scales=scales)

    def operator(self, code: int, inputs: list[int], outputs: list[int], options_type: int = 0, options=None) -> None:
        if code not in self.opcodes:
            self.opcodes.append(code)
        self.operators.append((self.opcodes.index(code), inputs, outputs, options_type, options))

    # Serialisation ---------------------------------------------------------------------------------

    def _vector(self, start, items, prepend) -> int:
        start(self.builder, len(items))
        for item in reversed(items):
            prepend(item)
        return self.builder.EndVector()

    def serialise(self, inputs: list[int], outputs: list[int]) -> bytes:
        b = self.builder
        buffer_offsets = []
        for data in self.buffers:
            data_offset = b.CreateByteVector(data) if data else None
            Buffer.BufferStart(b)
            if data_offset is not None:
                Buffer.BufferAddData(b, data_offset)
            buffer_offsets.append(Buffer.BufferEnd(b))

        tensor_offsets = []
        for name, shape, dtype, buffer, quant in self.tensors:
            name_offset = b.CreateString(name)
            shape_offset = self._vector(Tensor.TensorStartShapeVector, shape, b.PrependInt32)
            scale_offset = self._vector(QuantizationParameters.QuantizationParametersStartScaleVector,
                                        quant["scales"], b.PrependFloat32)
            zero_offset = self._vector(QuantizationParameters.QuantizationParametersStartZeroPointVector,
                                       [0] * len(quant["scales"]), b.PrependInt64)
            QuantizationParameters.QuantizationParametersStart(b)
            QuantizationParameters.QuantizationParametersAddScale(b, scale_offset)
            QuantizationParameters.QuantizationParametersAddZeroPoint(b, zero_offset)
            QuantizationParameters.QuantizationParametersAddQuantizedDimension(b, quant["axis"])
            quant_offset = QuantizationParameters.QuantizationParametersEnd(b)
            Tensor.TensorStart(b)
            Tensor.TensorAddShape(b, shape_offset)
            Tensor.TensorAddType(b, dtype)
            Tensor.TensorAddBuffer(b, buffer)
            Tensor.TensorAddName(b, name_offset)
            Tensor.TensorAddQuantization(b, quant_offset)
            tensor_offsets.append(Tensor.TensorEnd(b))

        operator_offsets = []
        for opcode_index, op_inputs, op_outputs, options_type, options in self.operators:
            options_offset = options(b) if options else None
            in_offset = self._vector(Operator.OperatorStartInputsVector, op_inputs, b.PrependInt32)
            out_offset = self._vector(Operator.OperatorStartOutputsVector, op_outputs, b.PrependInt32)
            Operator.OperatorStart(b)
            Operator.OperatorAddOpcodeIndex(b, opcode_index)
            Operator.OperatorAddInputs(b, in_offset)
            Operator.OperatorAddOutputs(b, out_offset)
            if options_offset is not None:
                Operator.OperatorAddBuiltinOptionsType(b, options_type)
                Operator.OperatorAddBuiltinOptions(b, options_offset)
            operator_offsets.append(Operator.OperatorEnd(b))

        subgraph_tensors = self._vector(SubGraph.SubGraphStartTensorsVector, tensor_offsets, b.PrependUOffsetTRelative)
        subgraph_inputs = self._vector(SubGraph.SubGraphStartInputsVector, inputs, b.PrependInt32)
        subgraph_outputs = self._vector(SubGraph.SubGraphStartOutputsVector, outputs, b.PrependInt32)
        subgraph_ops = self._vector(SubGraph.SubGraphStartOperatorsVector, operator_offsets, b.PrependUOffsetTRelative)
        SubGraph.SubGraphStart(b)
        SubGraph.SubGraphAddTensors(b, subgraph_tensors)
        SubGraph.SubGraphAddInputs(b, subgraph_inputs)
        SubGraph.SubGraphAddOutputs(b, subgraph_outputs)
        SubGraph.SubGraphAddOperators(b, subgraph_ops)
        subgraph = SubGraph.SubGraphEnd(b)

        code_offsets = []
        for code in self.opcodes:
            OperatorCode.OperatorCodeStart(b)
            OperatorCode.OperatorCodeAddDeprecatedBuiltinCode(b, min(code, 127))
            OperatorCode.OperatorCodeAddBuiltinCode(b, code)
            OperatorCode.OperatorCodeAddVersion(b, 1)
            code_offsets.append(OperatorCode.OperatorCodeEnd(b))

        codes = self._vector(Model.ModelStartOperatorCodesVector, code_offsets, b.PrependUOffsetTRelative)
        subgraphs = self._vector(Model.ModelStartSubgraphsVector, [subgraph], b.PrependUOffsetTRelative)
        buffers = self._vector(Model.ModelStartBuffersVector, buffer_offsets, b.PrependUOffsetTRelative)
        description = b.CreateString("sesr estimator comparison")
        Model.ModelStart(b)
        Model.ModelAddVersion(b, 3)
        Model.ModelAddOperatorCodes(b, codes)
        Model.ModelAddSubgraphs(b, subgraphs)
        Model.ModelAddDescription(b, description)
        Model.ModelAddBuffers(b, buffers)
        b.Finish(Model.ModelEnd(b), file_identifier=b"TFL3")
        return bytes(b.Output())


def _activation(layer) -> int:
    kinds = ActivationFunctionType.ActivationFunctionType
    return {None: kinds.NONE, Op.RELU: kinds.RELU, Op.CLIP: kinds.RELU_N1_TO_1}[layer.activation]


def network_to_tflite(network, seed: int = 0) -> bytes:
    """Write ``network`` (activations fused) as an int8 TFLite model with random weights."""
    network = fuse_activations(network)
    w = TfliteWriter(seed)
    ops = BuiltinOperator.BuiltinOperator
    opts = BuiltinOptions.BuiltinOptions
    int8 = TensorType.TensorType.INT8

    def nhwc(shape):
        return [1, shape.height, shape.width, shape.channels]

    ids = {network.input_name: w.tensor(network.input_name, nhwc(network.input_shape), int8)}
    for layer in network.layers:
        out = w.tensor(layer.name, nhwc(layer.output_shape), int8)
        source = ids[layer.inputs[0]]
        c_in = layer.input_shapes[0].channels
        c_out = layer.output_shape.channels
        activation = _activation(layer)
        if layer.op is Op.CONV:
            kh, kw = layer.kernel
            weights = w.constant_int8(f"{layer.name}.weight", [c_out, kh, kw, c_in])
            bias = w.constant_int32(f"{layer.name}.bias", np.zeros(c_out), scales=[ACTIVATION_SCALE * 0.01] * c_out)

            def options(b, layer=layer, activation=activation):
                Conv2DOptions.Conv2DOptionsStart(b)
                Conv2DOptions.Conv2DOptionsAddPadding(b, 0)
                Conv2DOptions.Conv2DOptionsAddStrideW(b, layer.stride[1])
                Conv2DOptions.Conv2DOptionsAddStrideH(b, layer.stride[0])
                Conv2DOptions.Conv2DOptionsAddFusedActivationFunction(b, activation)
                Conv2DOptions.Conv2DOptionsAddDilationWFactor(b, 1)
                Conv2DOptions.Conv2DOptionsAddDilationHFactor(b, 1)
                return Conv2DOptions.Conv2DOptionsEnd(b)

            w.operator(ops.CONV_2D, [source, weights, bias], [out], opts.Conv2DOptions, options)
        elif layer.op is Op.TRANSPOSE_CONV:
            kh, kw = layer.kernel
            weights = w.constant_int8(f"{layer.name}.weight", [c_out, kh, kw, c_in])
            shape = w.constant_int32(f"{layer.name}.shape", np.array(nhwc(layer.output_shape)), scales=[1.0])
            bias = w.constant_int32(f"{layer.name}.bias", np.zeros(c_out), scales=[ACTIVATION_SCALE * 0.01] * c_out)

            def options(b, layer=layer, activation=activation):
                TransposeConvOptions.TransposeConvOptionsStart(b)
                TransposeConvOptions.TransposeConvOptionsAddPadding(b, 0)
                TransposeConvOptions.TransposeConvOptionsAddStrideW(b, layer.stride[1])
                TransposeConvOptions.TransposeConvOptionsAddStrideH(b, layer.stride[0])
                TransposeConvOptions.TransposeConvOptionsAddFusedActivationFunction(b, activation)
                return TransposeConvOptions.TransposeConvOptionsEnd(b)

            w.operator(ops.TRANSPOSE_CONV, [shape, weights, source, bias], [out], opts.TransposeConvOptions, options)
        elif layer.op in (Op.ADD, Op.SUB):
            second = (ids[layer.inputs[1]] if len(layer.inputs) > 1 else
                      w.constant_int8(f"{layer.name}.constant", [1, 1, 1, layer.extra_parameters or 1], axis=3))
            code, options_type = (ops.ADD, opts.AddOptions) if layer.op is Op.ADD else (ops.SUB, opts.SubOptions)
            module = AddOptions if layer.op is Op.ADD else SubOptions
            prefix = "AddOptions" if layer.op is Op.ADD else "SubOptions"

            def options(b, module=module, prefix=prefix, activation=activation):
                getattr(module, f"{prefix}Start")(b)
                getattr(module, f"{prefix}AddFusedActivationFunction")(b, activation)
                return getattr(module, f"{prefix}End")(b)

            w.operator(code, [source, second], [out], options_type, options)
        elif layer.op is Op.PRELU:
            # Vela 5.2.0 rejects per-axis quantized PReLU slopes, so the slopes share one scale.
            alpha = w.tensor(f"{layer.name}.alpha", [1, 1, c_in], int8,
                             w.rng.integers(1, 60, size=c_in, dtype=np.int8).tobytes(), scales=[0.005])
            w.operator(ops.PRELU, [source, alpha], [out])
        elif layer.op in (Op.RELU, Op.CLIP):
            w.operator(ops.RELU if layer.op is Op.RELU else ops.RELU_N1_TO_1, [source], [out])
        elif layer.op is Op.TANH:
            w.operator(ops.TANH, [source], [out])
        elif layer.op is Op.DEPTH_TO_SPACE:
            def options(b, block=layer.block_size):
                DepthToSpaceOptions.DepthToSpaceOptionsStart(b)
                DepthToSpaceOptions.DepthToSpaceOptionsAddBlockSize(b, block)
                return DepthToSpaceOptions.DepthToSpaceOptionsEnd(b)

            w.operator(ops.DEPTH_TO_SPACE, [source], [out], opts.DepthToSpaceOptions, options)
        elif layer.op is Op.RESIZE:
            size = w.constant_int32(f"{layer.name}.size", np.array([layer.output_shape.height, layer.output_shape.width]),
                                    scales=[1.0])

            def options(b):
                ResizeBilinearOptions.ResizeBilinearOptionsStart(b)
                return ResizeBilinearOptions.ResizeBilinearOptionsEnd(b)

            w.operator(ops.RESIZE_BILINEAR, [source, size], [out], opts.ResizeBilinearOptions, options)
        else:
            raise ValueError(f"layer {layer.name}: {layer.op.value} is not written to TFLite by this benchmark")
        ids[layer.name] = out
    return w.serialise([ids[network.input_name]], [ids[name] for name in network.outputs])


# Running Vela ----------------------------------------------------------------------------------------

def run_vela(tflite: Path, accelerator: str, output_dir: Path) -> dict[str, float]:
    """Compile with Vela's defaults for ``accelerator`` and return its summary CSV row."""
    command = ["vela", str(tflite), "--accelerator-config", accelerator, "--output-dir", str(output_dir)]
    subprocess.run(command, check=True, capture_output=True, text=True)
    summary = next(output_dir.glob(f"{tflite.stem}_summary_*.csv"))
    with open(summary, newline="") as stream:
        row = next(csv.DictReader(stream))
    return {key: _number(value) for key, value in row.items()}


def _number(text: str):
    try:
        return float(text)
    except ValueError:
        return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", help="network name (repeatable); default sesr-m5")
    parser.add_argument("--npu", action="append", help="Ethos-U accelerator (repeatable); default ethos-u65-256")
    parser.add_argument("--scale", type=int, default=2)
    parser.add_argument("--size", default="1920x1080", help="LR input WIDTHxHEIGHT")
    parser.add_argument("--keep", type=Path, help="folder to keep the TFLite and Vela outputs in")
    args = parser.parse_args(argv)
    width, height = (int(v) for v in args.size.lower().split("x"))

    print("| network | NPU | tool | GMACs | NPU cycles (M) | inferences/s | DRAM MiB | SRAM MiB |")
    print("|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as scratch:
        folder = args.keep or Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        for model in args.model or ["sesr-m5"]:
            network = build_network(model, args.scale, width, height)
            tflite = folder / f"{network.name}_{width}x{height}.tflite"
            tflite.write_bytes(network_to_tflite(network))
            for npu_name in args.npu or ["ethos-u65-256"]:
                ours = estimate(network, resolve_npu(npu_name), Precision.INT8)
                vela = run_vela(tflite, npu_name, folder / f"{tflite.stem}_{npu_name}")
                print(f"| {network.name} {width}x{height} | {npu_name} | sesr estimate | {ours.executed_macs / 1e9:.2f} "
                      f"| {ours.cycles / 1e6:.1f} | {ours.fps:.2f} | {ours.dram_bytes / 2**20:.0f} "
                      f"| {ours.sram_bytes / 2**20:.0f} |")
                print(f"| | | Vela {vela.get('vela_version', '')} | {vela['nn_macs'] / 1e9:.2f} "
                      f"| {vela['cycles_total'] / 1e6:.1f} | {vela['inferences_per_second']:.2f} "
                      f"| {vela['dram_total_bytes'] / 2**20:.0f} | {vela['sram_total_bytes'] / 2**20:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
