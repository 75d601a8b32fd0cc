package dev.kerasdc.bundle;

import java.io.IOException;
import java.io.OutputStream;
import java.nio.ByteBuffer;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.Arrays;

/**
 * Where a restore writes R, strictly in order from its first byte to its last. Decoders stage small
 * writes in {@link #chunk}; every byte passes the SHA-256 once on its way out, so checking the
 * result needs no second pass over R.
 */
abstract class Output {
  /** Staging size; a multiple of every element size. */
  static final int CHUNK = 1 << 16;

  /**
   * Staging buffer; decoders write at {@link #fill} and call {@link #flush} when it is full.
   * Invariant: {@code chunk[fill, CHUNK)} holds zeros, so short zero runs only advance
   * {@link #fill}.
   */
  final byte[] chunk = new byte[CHUNK];

  int fill;

  private final MessageDigest digest;
  private long written;

  Output() {
    digest = sha256();
  }

  static MessageDigest sha256() {
    try {
      return MessageDigest.getInstance("SHA-256");
    } catch (NoSuchAlgorithmException e) {
      throw new IllegalStateException("this Java platform has no SHA-256", e);
    }
  }

  /** Writes bytes straight through (after what is staged). */
  final void put(byte[] src, int offset, int length) {
    if (length == 0) {
      return;
    }
    flush();
    digest.update(src, offset, length);
    emit(src, offset, length);
    written += length;
  }

  /** Zero runs at least this long bypass the staging buffer. */
  private static final int LONG_RUN = 4096;

  private static final byte[] ZEROS = new byte[CHUNK];

  /** Writes {@code count} zero bytes. */
  final void zeros(long count) {
    if (count >= LONG_RUN) {
      // Long runs (pruned weights): hash them from a shared zero buffer and let the target skip
      // them where it is known to hold zeros already.
      flush();
      while (count > 0) {
        int n = (int) Math.min(count, CHUNK);
        digest.update(ZEROS, 0, n);
        emitZeros(n);
        written += n;
        count -= n;
      }
      return;
    }
    while (count > 0) {
      if (fill == CHUNK) {
        flush();
      }
      int n = (int) Math.min(count, CHUNK - fill);
      fill += n; // the staged area past fill is already zero
      count -= n;
    }
  }

  /**
   * Writes {@code count} copies of the {@code esize}-byte pattern at {@code src[offset]}. The
   * staged length must be a multiple of {@code esize} (true within one segment).
   */
  final void repeat(byte[] src, int offset, int esize, long count) {
    long bytes = count * esize;
    while (bytes > 0) {
      if (fill == CHUNK) {
        flush();
      }
      int n = (int) Math.min(bytes, CHUNK - fill);
      System.arraycopy(src, offset, chunk, fill, esize);
      for (int done = esize; done < n; ) { // doubling copies keep the pattern's phase
        int k = Math.min(done, n - done);
        System.arraycopy(chunk, fill, chunk, fill + done, k);
        done += k;
      }
      fill += n;
      bytes -= n;
    }
  }

  /** Passes the staged bytes on, and clears the staging buffer. */
  final void flush() {
    if (fill > 0) {
      digest.update(chunk, 0, fill);
      emit(chunk, 0, fill);
      written += fill;
      Arrays.fill(chunk, 0, fill, (byte) 0);
      fill = 0;
    }
  }

  /** Bytes written so far, staged ones included. */
  final long written() {
    return written + fill;
  }

  /** SHA-256 of everything written; call after {@link #flush}. */
  final byte[] digest() {
    return digest.digest();
  }

  abstract void emit(byte[] src, int offset, int length);

  /** Writes {@code length <= CHUNK} zero bytes. */
  void emitZeros(int length) {
    emit(ZEROS, 0, length);
  }

  /** Writes into a byte array from a start index. */
  static final class ToArray extends Output {
    private final byte[] target;
    private final boolean zeroed;
    private int position;

    /**
     * @param zeroed whether the target is known to hold zeros from {@code start} on (a new array)
     */
    ToArray(byte[] target, int start, boolean zeroed) {
      this.target = target;
      this.position = start;
      this.zeroed = zeroed;
    }

    @Override
    void emit(byte[] src, int offset, int length) {
      System.arraycopy(src, offset, target, position, length);
      position += length;
    }

    @Override
    void emitZeros(int length) {
      if (zeroed) {
        position += length;
      } else {
        super.emitZeros(length);
      }
    }
  }

  /** Writes into a ByteBuffer (heap or direct) from its position, advancing a duplicate. */
  static final class ToBuffer extends Output {
    private final ByteBuffer target;
    private final boolean zeroed;

    /** @param zeroed whether the target is known to hold zeros from its position on */
    ToBuffer(ByteBuffer target, boolean zeroed) {
      this.target = target.duplicate();
      this.zeroed = zeroed;
    }

    @Override
    void emit(byte[] src, int offset, int length) {
      target.put(src, offset, length);
    }

    @Override
    void emitZeros(int length) {
      if (zeroed) {
        target.position(target.position() + length);
      } else {
        super.emitZeros(length);
      }
    }
  }

  /** Writes to a stream; an IOException comes back as {@link WriteFailure}. */
  static final class ToStream extends Output {
    private final OutputStream target;

    ToStream(OutputStream target) {
      this.target = target;
    }

    @Override
    void emit(byte[] src, int offset, int length) {
      try {
        target.write(src, offset, length);
      } catch (IOException e) {
        throw new WriteFailure(e);
      }
    }
  }

  /** Carries an IOException of {@link ToStream} through the decoders. */
  static final class WriteFailure extends RuntimeException {
    private static final long serialVersionUID = 1L;

    WriteFailure(IOException cause) {
      super(cause);
    }

    IOException ioException() {
      return (IOException) getCause();
    }
  }
}
